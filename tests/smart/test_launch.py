"""SMART App Launch against real parts: oauth2-mock-server as the EHR's authorization server, a
FHIR server on loopback that wants its bearer token, and `myoguide serve` registering both.
The browser is httpx here (each redirect followed by hand, so each step can be checked); the
Chromium run is tests/web/test_smart_browser.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from formhtml import field_value, selected
from smartparts import (
    CLIENT_ID,
    App,
    FhirServer,
    OAuthServer,
    ehr_entry,
    load_chart,
    query_of,
    serve_fhir,
    start_app,
    start_oauth_server,
    trust_file,
    without_control_facts,
)

USER = "Practitioner/dr-smart"
READ_SCOPES = {
    "patient/Patient.rs",
    "patient/Condition.rs",
    "patient/MedicationRequest.rs",
    "patient/MedicationStatement.rs",
    "patient/MedicationAdministration.rs",
    "patient/Observation.rs",
    "patient/AllergyIntolerance.rs",
}


@pytest.fixture(scope="module")
def oauth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OAuthServer]:
    server = start_oauth_server(tmp_path_factory.mktemp("oauth"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fhir(oauth: OAuthServer) -> Iterator[FhirServer]:
    with serve_fhir(oauth, without_control_facts(load_chart())) as server:
        yield server


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, fhir: FhirServer) -> Iterator[App]:
    folder = tmp_path_factory.mktemp("app")
    running = start_app(folder / "data", trust_file(folder, ehr_entry(fhir)))
    yield running
    log = running.stop()
    # No access token the FHIR server accepted was ever written by the app.
    assert not any(token in log for token in fhir.tokens_seen)
    assert "pat-1" not in log  # nor the EHR's patient id (httpx would log each URL)


@pytest.fixture(autouse=True)
def _defaults(oauth: OAuthServer, fhir: FhirServer) -> None:
    oauth.configure(patient="pat-1", fhirUser=USER)
    fhir.fail.clear()


def browser(app: App) -> httpx.Client:
    return httpx.Client(base_url=app.base, timeout=30, follow_redirects=False)


def launch(client: httpx.Client, fhir: FhirServer, launch: str | None) -> httpx.Response:
    """Run a launch to the app's answer to the callback (the authorize step followed)."""
    params = {"iss": fhir.base, **({"launch": launch} if launch else {})}
    out = client.get("/smart/launch", params=params)
    assert out.status_code == 302, out.text
    back = httpx.get(out.headers["location"], timeout=30, follow_redirects=False)
    assert back.status_code == 302, back.text
    assert back.headers["location"].startswith(str(client.base_url) + "/smart/callback?")
    return client.get(back.headers["location"])


@pytest.mark.parametrize("launch_id", ["ehr-launch-42", None], ids=["ehr", "standalone"])
def test_a_launch_opens_the_form_filled_from_the_chart(
    app: App, fhir: FhirServer, oauth: OAuthServer, launch_id: str | None
) -> None:
    with browser(app) as client:
        out = client.get("/smart/launch", params={"iss": fhir.base + "/", "launch": launch_id})
        assert out.status_code == 302
        asked = query_of(out.headers["location"])
        assert out.headers["location"].startswith(oauth.url + "/authorize?")
        assert asked["response_type"] == "code"
        assert asked["client_id"] == CLIENT_ID
        assert asked["redirect_uri"] == app.base + "/smart/callback"
        assert asked["aud"] == fhir.base + "/"
        assert asked["code_challenge_method"] == "S256"
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", asked["code_challenge"])
        assert len(asked["state"]) >= 22  # 128 bits and more
        scope = set(asked["scope"].split())
        first = "launch" if launch_id else "launch/patient"
        assert scope == {first, "openid", "fhirUser", *READ_SCOPES}
        assert asked.get("launch") == launch_id
        cookie = out.headers["set-cookie"].lower()
        assert "samesite=lax" in cookie
        assert "httponly" in cookie

        back = httpx.get(out.headers["location"], timeout=30, follow_redirects=False)
        done = client.get(back.headers["location"])
        assert done.status_code == 303, done.text
        target = done.headers["location"]
        assert re.fullmatch(r"/assess\?chart=[A-Za-z0-9_-]{43}", target)
        page = client.get(target)
        assert page.status_code == 200
        html = page.text
        assert "read from the patient's EHR chart" in html
        assert field_value(html, "diagnosis") == "dermatomyositis"
        assert field_value(html, "age_years") == "62"
        assert field_value(html, "current_medications[0].agent") == "prednisone"
        assert field_value(html, "current_medications[1].agent") == "methotrexate"
        # Only what the chart did not tell is asked, with the chart's evidence beside it.
        assert "What the chart did not tell" in html
        assert selected(html, "disease_control_achieved") == "unknown"
        assert selected(html, "flare") == "unknown"
        assert "treatment_history[0].outcome" not in re.findall(r'<select name="([^"]+)"', html)
        assert (
            "Problem list: Dermatomyositis (clinical status active, verification confirmed" in html
        )
        full = client.get(target + "&full=1").text
        assert selected(full, "current_medications[1].agent") == "methotrexate"
        assert "read through a SMART launch" not in full  # evidence is not a data warning
        # The clinician is the id_token's fhirUser, named with the EHR.
        assert f"{fhir.base}/{USER}" in html
        for response in (out, back, done, page):
            assert not any(t in response.text for t in fhir.tokens_seen)
            assert not any(t in str(response.headers) for t in fhir.tokens_seen)


def test_an_unknown_iss_is_refused_with_no_redirect(app: App, fhir: FhirServer) -> None:
    with browser(app) as client:
        for iss in ("https://evil.example/fhir", fhir.base + "x", None):
            out = client.get("/smart/launch", params={"iss": iss} if iss else {})
            assert out.status_code == 400
            assert "location" not in out.headers
            assert "not registered" in out.text


def test_state_is_single_use_and_bound_to_the_browser(
    app: App, fhir: FhirServer, oauth: OAuthServer
) -> None:
    with browser(app) as client, browser(app) as other:
        out = client.get("/smart/launch", params={"iss": fhir.base, "launch": "x"})
        back = httpx.get(out.headers["location"], timeout=30, follow_redirects=False)
        callback = back.headers["location"]
        # Another browser (no cookie, then its own cookie) cannot use this state.
        other.get("/smart/launch", params={"iss": fhir.base, "launch": "y"})
        foreign = other.get(callback)
        assert foreign.status_code == 400
        assert "not known" in foreign.text
        # A foreign try does not spend it: this browser still finishes, once.
        assert client.get(callback).status_code == 303
        assert client.get(callback).status_code == 400

        first = launch(client, fhir, "again")
        assert first.status_code == 303
        state = query_of(first.request.url.__str__())["state"]
        code = query_of(str(first.request.url))["code"]
        replay = client.get("/smart/callback", params={"code": code, "state": state})
        assert replay.status_code == 400
        missing = client.get("/smart/callback", params={"code": code})
        assert missing.status_code == 400
        made_up = client.get("/smart/callback", params={"code": code, "state": "A" * 43})
        assert made_up.status_code == 400


def test_a_reused_code_is_refused_by_the_server_and_shown(
    app: App, fhir: FhirServer, oauth: OAuthServer
) -> None:
    with browser(app) as client:
        out = client.get("/smart/launch", params={"iss": fhir.base, "launch": "x"})
        back = httpx.get(out.headers["location"], timeout=30, follow_redirects=False)
        code = query_of(back.headers["location"])["code"]
        assert client.get(back.headers["location"]).status_code == 303
        # A fresh state of this browser with the spent code: the token endpoint refuses it.
        again = client.get("/smart/launch", params={"iss": fhir.base, "launch": "x"})
        state = query_of(again.headers["location"])["state"]
        refused = client.get("/smart/callback", params={"code": code, "state": state})
        assert refused.status_code == 400
        assert "refused to exchange the code" in refused.text


def test_a_token_response_without_patient_reads_no_chart(
    app: App, fhir: FhirServer, oauth: OAuthServer
) -> None:
    oauth.configure(fhirUser=USER)
    before = len(fhir.tokens_seen)
    with browser(app) as client:
        out = launch(client, fhir, None)
    assert out.status_code == 400
    assert "patient context is missing" in out.text
    assert len(fhir.tokens_seen) == before  # no chart read


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        ({"nonce": "not-the-one-sent"}, "nonce"),
        ({"aud": "another-app"}, "aud"),
        ({"iss": "https://other-issuer.example"}, "iss"),
        ({"exp": 1_000_000}, "exp"),
        ({"fhirUser": None}, "fhirUser"),
    ],
)
def test_an_id_token_failing_verification_is_refused(
    app: App, fhir: FhirServer, oauth: OAuthServer, claims: dict[str, Any], why: str
) -> None:
    oauth.configure(patient="pat-1", fhirUser=USER, idToken=claims)
    before = len(fhir.tokens_seen)
    with browser(app) as client:
        out = launch(client, fhir, "x")
        assert out.status_code == 400, why
        assert "could not be verified" in out.text
        assert len(fhir.tokens_seen) == before
        # No session was started: the pages still know no one.
        assert USER not in client.get("/assess").text


@pytest.mark.parametrize("status", [401, 403, 500, 503])
def test_a_fhir_server_refusing_gives_a_clear_page_and_no_answer(
    app: App, fhir: FhirServer, status: int
) -> None:
    fhir.fail["MedicationStatement"] = status
    with browser(app) as client:
        out = launch(client, fhir, "x")
    assert out.status_code == 502
    assert "The chart could not be read" in out.text
    assert "/assess?chart=" not in out.text


def test_narrower_granted_scopes_are_named_and_never_read_as_none(
    app: App, fhir: FhirServer, oauth: OAuthServer
) -> None:
    granted = "launch openid fhirUser " + " ".join(
        sorted(READ_SCOPES - {"patient/MedicationStatement.rs", "patient/AllergyIntolerance.rs"})
    )
    oauth.configure(patient="pat-1", fhirUser=USER, scope=granted)
    # As a server enforcing scopes does: what was not granted is refused.
    fhir.fail.update({"MedicationStatement": 403, "AllergyIntolerance": 403})
    with browser(app) as client:
        out = launch(client, fhir, "x")
        assert out.status_code == 303, out.text
        html = client.get(out.headers["location"]).text
    assert "the EHR granted no access to MedicationStatement" in html
    assert "the EHR granted no access to AllergyIntolerance" in html
    # Unread medication data is never taken as "no such drug": it is marked unresolved.
    assert "medication statements not read" in html


def test_a_confidential_client_authenticates_with_http_basic(
    tmp_path: Path, fhir: FhirServer, oauth: OAuthServer
) -> None:
    entry = ehr_entry(fhir, client_secret="s3cret-for-tests")
    running = start_app(tmp_path / "data", trust_file(tmp_path, entry))
    try:
        oauth.configure(patient="pat-1", fhirUser=USER, basic=f"{CLIENT_ID}:s3cret-for-tests")
        with browser(running) as client:
            assert launch(client, fhir, "x").status_code == 303
        oauth.configure(patient="pat-1", fhirUser=USER, basic=f"{CLIENT_ID}:another-secret")
        with browser(running) as client:
            assert launch(client, fhir, "x").status_code == 400
    finally:
        log = running.stop()
    assert "s3cret-for-tests" not in log


def test_an_authorization_server_refusal_is_a_clear_page(app: App, fhir: FhirServer) -> None:
    with browser(app) as client:
        out = client.get("/smart/launch", params={"iss": fhir.base, "launch": "x"})
        state = query_of(out.headers["location"])["state"]
        for error, shown in (("access_denied", "access_denied"), ("<b>x</b>", "grant access.")):
            refused = client.get("/smart/callback", params={"state": state, "error": error})
            assert refused.status_code == 400
            assert "did not sign you in" in refused.text
            assert shown in refused.text
            state = query_of(
                client.get("/smart/launch", params={"iss": fhir.base}).headers["location"]
            )["state"]
