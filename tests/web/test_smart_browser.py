"""SMART App Launch in a real Chromium: an EHR launch and a standalone launch against a real
authorization server (oauth2-mock-server) and a FHIR server that wants its bearer token, to the
answer, with axe-core on every state. The authorization server is reached as `localhost`, so
the redirect back to the app (127.0.0.1) is cross-site, as from a real EHR. The answer equals
`myoguide recommend` on the same chart with the same answers."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from pagechecks import axe_clean
from playwright.sync_api import Browser, BrowserContext, Page

from clirun import run_cli
from myoguide.bootstrap import default_service
from smartparts import (
    App,
    FhirServer,
    OAuthServer,
    ehr_entry,
    load_chart,
    serve_fhir,
    start_app,
    start_oauth_server,
    trust_file,
    without_control_facts,
)

USER = "Practitioner/dr-browser"


def _chart() -> dict[str, object]:
    """The shared resistant-DM chart without control facts, and azathioprine stopped unexplained."""
    chart = without_control_facts(load_chart())
    for entry in chart["entry"]:  # type: ignore[union-attr]
        res = entry["resource"]
        if res.get("id") == "ms-mtx-old":
            # Azathioprine tried and stopped, with no reason written: only the clinician knows.
            res.pop("statusReason")
            res["effectivePeriod"] = {"start": "2025-01-10", "end": "2025-09-30"}
            res["medicationCodeableConcept"] = {
                "coding": [
                    {
                        "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                        "code": "1256",
                        "display": "azathioprine",
                    }
                ],
                "text": "azathioprine",
            }
    return chart


Parts = tuple[OAuthServer, FhirServer, App]


@pytest.fixture(scope="module")
def parts(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[OAuthServer, FhirServer, App]]:
    folder = tmp_path_factory.mktemp("smart-browser")
    oauth = start_oauth_server(folder)
    try:
        with serve_fhir(oauth, _chart()) as fhir:
            fhir.authorize_host = "localhost"
            app = start_app(folder / "data", trust_file(folder, ehr_entry(fhir)))
            try:
                yield oauth, fhir, app
            finally:
                log = app.stop()
                assert not any(token in log for token in fhir.tokens_seen)
    finally:
        oauth.stop()


@pytest.fixture
def tab(browser: Browser) -> Iterator[Page]:
    ctx: BrowserContext = browser.new_context(viewport={"width": 1280, "height": 800})
    ctx.set_default_timeout(15_000)
    yield ctx.new_page()
    ctx.close()


def _command_answer(answers: dict[str, object], tmp_path: Path) -> list[str]:
    """The recommendation ids `myoguide recommend` gives on the chart's state plus the answers."""
    service = default_service()
    state = msgspec.to_builtins(service.read_chart(_chart(), service.today()).state)
    state.update({k: v for k, v in answers.items() if k != "history"})
    for item in state["treatment_history"]:
        item["outcome"] = answers["history"].get(item["agent"], item["outcome"])  # type: ignore[union-attr]
    path = tmp_path / "state.json"
    path.write_text(json.dumps(state))
    res = run_cli("recommend", str(path), "--format", "json")
    assert res.code == 0, res.stderr
    out = json.loads(res.stdout)
    return [r["id"] for r in out["recommendations"]]


@pytest.mark.parametrize("ehr_launch", [True, False], ids=["ehr", "standalone"])
def test_a_launch_reaches_the_answer_in_chromium(
    parts: Parts,
    tab: Page,
    axe_source: str,
    tmp_path: Path,
    ehr_launch: bool,
) -> None:
    oauth, fhir, app = parts
    oauth.configure(patient="pat-1", fhirUser=USER)
    launch = "&launch=opaque-42" if ehr_launch else ""
    tab.goto(f"{app.base}/smart/launch?iss={fhir.base}{launch}")
    # Through the authorization server (another site) and back, to the questions.
    tab.wait_for_url(re.compile(r".*/assess\?chart="))
    assert tab.url.startswith(app.base + "/assess?chart=")
    tab.get_by_role("heading", name="What the chart did not tell").wait_for()
    axe_clean(tab, axe_source, "the questions")
    # The signed-in clinician is the id_token's fhirUser, kept across the cross-site return.
    assert f"{fhir.base}/{USER}" in tab.content()
    control = tab.get_by_label("Has the disease ever been brought under control on treatment?")
    flare = tab.get_by_label("Is it active again now, after control (a flare)?")
    aza = tab.get_by_label("How did the disease answer azathioprine?")
    # Only the open questions: prednisone's answer is in the chart.
    assert tab.locator("select").count() == 3
    assert "Order stopped" not in tab.content()
    evidence = tab.locator("#" + aza.get_attribute("aria-describedby")).inner_text()
    assert "Medication statement stopped (2025-09-30); no reason stated" in evidence
    assert "Problem list: Dermatomyositis" in tab.locator("#ev-flare").inner_text()
    control.select_option("no")
    flare.select_option("no")
    aza.select_option("inadequate_response")
    # The EHR launch saves the visit on the patient's local record; standalone only shows.
    button = "Show options and save visit" if ehr_launch else "Show options"
    with tab.expect_navigation():
        tab.get_by_role("button", name=button, exact=True).click()
    tab.locator("#answer").wait_for()
    axe_clean(tab, axe_source, "the answer after a launch")
    shown = [
        i.removeprefix("opt-")
        for i in tab.locator("li.option").evaluate_all("els => els.map(e => e.id)")
    ]
    answers = {
        "disease_control_achieved": False,
        "flare": False,
        "history": {"azathioprine": "inadequate_response"},
    }
    assert shown, tab.content()[tab.content().find('id="answer"') :][:3000]
    assert shown == _command_answer(answers, tmp_path)
    assert f"{fhir.base}/{USER}" in tab.content()
    if ehr_launch:
        _decide_and_export(tab, axe_source, f"{fhir.base}/{USER}")


def _decide_and_export(tab: Page, axe_source: str, clinician: str) -> None:
    """Record the decision after a launch; the record's export names the fhirUser."""
    tab.get_by_text("saved with this answer").wait_for()
    with tab.expect_navigation():
        tab.get_by_role("button", name="Record decision").click()
    match = re.search(r"/patients/(\d+)$", tab.url)
    assert match, tab.url
    axe_clean(tab, axe_source, "the linked patient's record")
    assert re.search(r"EHR patient [0-9a-f]{12}", tab.content())
    export = tab.request.get(tab.url + "/export.json")
    assert export.status == 200
    record = export.json()
    assert record["decisions"][-1]["clinician"] == clinician
    assert "pat-1" not in export.text()


def test_refusals_are_clear_accessible_pages(parts: Parts, tab: Page, axe_source: str) -> None:
    oauth, fhir, app = parts
    response = tab.goto(f"{app.base}/smart/launch?iss=https://unknown.example/fhir")
    assert response is not None
    assert response.status == 400
    tab.get_by_role("heading", name="This EHR is not registered").wait_for()
    axe_clean(tab, axe_source, "an unknown EHR")

    oauth.configure(fhirUser=USER)  # no patient in the token response
    tab.goto(f"{app.base}/smart/launch?iss={fhir.base}&launch=x")
    tab.get_by_role("heading", name="The patient context is missing").wait_for()
    axe_clean(tab, axe_source, "a launch without a patient")

    oauth.configure(patient="pat-1", fhirUser=USER)
    fhir.fail["Condition"] = 503
    try:
        tab.goto(f"{app.base}/smart/launch?iss={fhir.base}&launch=x")
        tab.get_by_role("heading", name="The chart could not be read").wait_for()
        axe_clean(tab, axe_source, "a FHIR server failing")
    finally:
        fhir.fail.clear()
