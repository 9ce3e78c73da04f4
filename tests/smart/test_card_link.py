"""A CDS card from an EHR registered for SMART launch opens the app on its chart by a `smart`
link; the EHR hands the hand-off back as appContext, and the page opens that hand-off."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from formhtml import selected
from smartparts import (
    App,
    FhirServer,
    OAuthServer,
    ehr_entry,
    load_chart,
    patient_view,
    query_of,
    serve_fhir,
    start_app,
    start_oauth_server,
    trust_file,
)

PV = "/cds-services/myoguide-patient-view"


Parts = tuple[OAuthServer, FhirServer, App]


@pytest.fixture(scope="module")
def parts(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[OAuthServer, FhirServer, App]]:
    folder = tmp_path_factory.mktemp("smart-cards")
    oauth = start_oauth_server(folder)
    try:
        with serve_fhir(oauth, load_chart()) as fhir:
            # --insecure-dev: the CDS call needs no signed client token here (loopback only).
            app = start_app(folder / "data", trust_file(folder, ehr_entry(fhir)), "--insecure-dev")
            try:
                yield oauth, fhir, app
            finally:
                app.stop()
    finally:
        oauth.stop()


def _summary_link(app: App, body: dict[str, object]) -> dict[str, str]:
    res = httpx.post(app.base + PV, json=body, timeout=30)
    assert res.status_code == 200, res.text
    cards = res.json()["cards"]
    (link,) = cards[0]["links"]
    return dict(link)


def test_a_card_for_a_registered_ehr_opens_the_app_by_smart_launch(
    parts: Parts,
) -> None:
    oauth, fhir, app = parts
    link = _summary_link(app, patient_view(fhir, fhir.base + "/"))
    assert link["type"] == "smart"
    assert link["url"] == app.base + "/smart/launch"
    token = link["appContext"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)

    # The EHR launches the app and hands the token back in its token response.
    oauth.configure(patient="pat-1", fhirUser="Practitioner/dr-card", appContext=token)
    with httpx.Client(base_url=app.base, timeout=30, follow_redirects=False) as client:
        out = client.get(link["url"], params={"iss": fhir.base, "launch": "from-card"})
        assert query_of(out.headers["location"])["launch"] == "from-card"
        back = httpx.get(out.headers["location"], timeout=30, follow_redirects=False)
        done = client.get(back.headers["location"])
        assert done.status_code == 303
        assert done.headers["location"] == f"/assess?chart={token}"
        html = client.get(done.headers["location"]).text
    # The card's chart, as its link opens it: the filled form.
    assert selected(html, "current_medications[1].agent") == "methotrexate"
    assert selected(html, "disease_control_achieved") == "no"


def test_a_card_for_another_fhir_server_keeps_the_absolute_link(
    parts: Parts,
) -> None:
    _, fhir, app = parts
    link = _summary_link(app, patient_view(fhir, "https://other-ehr.example/fhir"))
    assert link["type"] == "absolute"
    assert link["url"].startswith(app.base + "/assess?chart=")
    assert "appContext" not in link
