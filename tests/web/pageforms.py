"""Visit forms the page tests fill, as a clinician enters them (field name -> typed value)."""

from __future__ import annotations

from pagechecks import fill
from playwright.sync_api import Page

# A flare on prednisone 7.5 mg/day after control (methotrexate added by the tests that need it).
FLARE_ON_PREDNISONE = {
    "age_years": "58",
    "diagnosis": "dermatomyositis",
    "weight.value": "72",
    "disease_control_achieved": "yes",
    "flare": "yes",
    "current_medications[0].agent": "prednisone",
    "current_medications[0].dose.value": "7.5",
}

# Never controlled on prednisone 40 mg/day, which was inadequate: the resistant path.
RESISTANT = {
    "age_years": "61",
    "diagnosis": "dermatomyositis",
    "weight.value": "66",
    "height.value": "5 ft 6 in",
    "disease_control_achieved": "no",
    "flare": "no",
    "alternative_diagnoses_excluded": "yes",
    "current_medications[0].agent": "prednisone",
    "current_medications[0].dose.value": "40",
    "treatment_history[0].agent": "prednisone",
    "treatment_history[0].outcome": "inadequate_response",
}


def fill_resistant_after_azathioprine(page: Page) -> None:
    """Fill the resistant case with azathioprine, also inadequate, as a second earlier drug."""
    fill(page, RESISTANT)
    page.get_by_role("button", name="Add another earlier treatment").click()
    fill(
        page,
        {
            "treatment_history[1].agent": "azathioprine",
            "treatment_history[1].outcome": "inadequate_response",
        },
    )
