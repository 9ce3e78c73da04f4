"""Draft orders myoguide offers are orders an EHR can sign (ADR 0025): route, dose, schedule."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from fhir.resources.R4B.medicationrequest import MedicationRequest

from myoguide.adapters.fhir.codes import SNOMED
from myoguide.adapters.fhir.proposals import agent_route, proposed_medication_request
from myoguide.bootstrap import default_service
from myoguide.errors import KnowledgeError
from myoguide.knowledge.checks import problems
from myoguide.knowledge.loader import load_packaged

VIGNETTES = Path(__file__).resolve().parents[1] / "vignettes"
SERVICE = default_service()
KB = SERVICE.knowledge


def _every_regimen_draft() -> dict[str, tuple[Any, dict[str, Any]]]:
    """Return regimen id -> (its dose, its draft) for every dosed regimen the vignettes reach."""
    out: dict[str, tuple[Any, dict[str, Any]]] = {}
    for path in sorted(VIGNETTES.glob("*.json")):
        doc = json.loads(path.read_text())
        if "input" not in doc or path.stem.startswith("bad-"):
            continue
        for rec in SERVICE.recommend(doc["input"]).recommendations:
            for agent in rec.agents:
                for reg in agent.regimens:
                    if reg.dose is None or reg.id in out:
                        continue
                    option = msgspec.structs.replace(agent, dose=reg.dose)
                    route = agent_route(KB, agent.agent)
                    draft = proposed_medication_request(option, "Patient/p1", rec.id, route)
                    out[reg.id] = (reg.dose, draft)
    return out


DRAFTS = _every_regimen_draft()


def test_the_vignettes_reach_every_dose_rule() -> None:
    dosed = {rid for rid, r in KB.dose_rules.items() if r.kind != "unstated"}
    assert dosed <= set(DRAFTS)


@pytest.mark.parametrize("regimen", sorted(DRAFTS))
def test_every_draft_is_valid_and_carries_a_coded_route(regimen: str) -> None:
    _, draft = DRAFTS[regimen]
    MedicationRequest.model_validate(draft)
    dosage = draft["dosageInstruction"][0]
    coding = dosage["route"]["coding"][0]
    agent = KB.dose_rules[regimen].agent
    route_id = KB.prescribing[agent].route
    assert route_id is not None
    assert (coding["system"], coding["code"]) == (SNOMED, KB.routes[route_id].code)


@pytest.mark.parametrize("regimen", sorted(DRAFTS))
def test_no_draft_has_a_range_or_a_dose_an_ehr_cannot_sign(regimen: str) -> None:
    dose, draft = DRAFTS[regimen]
    dosage = draft["dosageInstruction"][0]
    for rate in dosage.get("doseAndRate", []):
        assert "doseRange" not in rate
        assert rate["doseQuantity"]["value"] > 0
    single = dose.low is not None and dose.low == dose.high and dose.period != "course"
    # A daily (weekly) total with no schedule in the knowledge says nothing of how many doses.
    single = single and not (dose.timing is None and dose.period in ("day", "week"))
    # A figure with its schedule gives a dose to sign; a range, a limit, a course or a total
    # with no schedule is left in words.
    assert ("doseAndRate" in dosage) is single
    if not single:
        assert "No dose" in dosage["text"]


def test_oral_and_intravenous_agents() -> None:
    oral = {"prednisone", "azathioprine", "methotrexate", "mycophenolate_mofetil", "tacrolimus"}
    iv = {"rituximab", "ivig", "cyclophosphamide"}
    for agent in oral | iv:
        route = agent_route(KB, agent)
        assert route is not None
        assert route.display == ("Oral route" if agent in oral else "Intravenous route")


def test_prednisone_range_and_floor_are_words_not_a_half_range() -> None:
    for regimen in ("prednisone_r2_range", "prednisone_r4_minimum"):
        dose, draft = DRAFTS[regimen]
        dosage = draft["dosageInstruction"][0]
        assert "doseAndRate" not in dosage
        assert f"{dose.low} mg" in dosage["text"] or f"at least {dose.low}" in dosage["text"]
        assert dosage["timing"]["repeat"] == {"frequency": 1, "period": 1, "periodUnit": "d"}


def test_ivig_per_day_is_one_infusion_with_its_schedule_and_adds_up_to_the_course() -> None:
    course, _ = DRAFTS["ivig_2g_kg_monthly"]
    daily, daily_draft = DRAFTS["ivig_1g_kg_day_two_days"]
    dosage = daily_draft["dosageInstruction"][0]
    per_infusion = Decimal(str(dosage["doseAndRate"][0]["doseQuantity"]["value"]))
    repeat = dosage["timing"]["repeat"]
    assert (repeat["period"], repeat["periodUnit"]) == (1, "mo")
    assert (repeat["count"], repeat["countMax"]) == (8, 12)
    # Both regimens give 2 g/kg a month: two infusions of 1 g/kg make the same monthly total.
    assert course.low is not None
    assert per_infusion * repeat["frequency"] == course.low == 2 * daily.low
    assert per_infusion * repeat["count"] == 4 * course.low  # eight infusions, four months


def test_ivig_course_is_not_drafted_as_one_infusion() -> None:
    course, draft = DRAFTS["ivig_2g_kg_monthly"]
    dosage = draft["dosageInstruction"][0]
    # The source does not say over how many days a course is given: no amount, no schedule.
    assert "doseAndRate" not in dosage
    assert "timing" not in dosage
    assert f"{course.low} g per course" in dosage["text"]
    assert "does not say over how many days" in dosage["text"]


def test_up_to_limit_is_the_maximum_per_period() -> None:
    _, draft = DRAFTS["azathioprine_combination"]
    ceiling = draft["dosageInstruction"][0]["maxDosePerPeriod"]
    assert (ceiling["numerator"]["value"], ceiling["numerator"]["unit"]) == (200, "mg")
    assert ceiling["denominator"]["code"] == "d"


def test_a_daily_total_in_two_doses_is_drafted_per_dose() -> None:
    dose, draft = DRAFTS["tacrolimus_0_075_mg_kg"]
    dosage = draft["dosageInstruction"][0]
    per_dose = Decimal(str(dosage["doseAndRate"][0]["doseQuantity"]["value"]))
    assert per_dose * dosage["timing"]["repeat"]["frequency"] == dose.low


def test_a_dosed_agent_without_a_route_is_refused_at_load() -> None:
    kb = load_packaged()
    rx = msgspec.structs.replace(kb.prescribing["ivig"], route=None)
    broken = msgspec.structs.replace(kb, prescribing={**kb.prescribing, "ivig": rx})
    assert "prescribing.ivig.route: an agent with a dose rule needs a route" in problems(broken)
    unknown = msgspec.structs.replace(rx, route="by_mouth", route_basis="x")
    broken = msgspec.structs.replace(kb, prescribing={**kb.prescribing, "ivig": unknown})
    assert "prescribing.ivig.route: 'by_mouth' is not in routes" in problems(broken)


def test_an_oral_route_on_injection_products_is_refused() -> None:
    from myoguide.domain.prescribable import build_tables
    from myoguide.knowledge.terminology import load_packaged_terminology

    kb = load_packaged()
    rx = msgspec.structs.replace(kb.prescribing["rituximab"], route="oral")
    broken = msgspec.structs.replace(kb, prescribing={**kb.prescribing, "rituximab": rx})
    with pytest.raises(KnowledgeError, match=r"prescribing\.rituximab\.route"):
        build_tables(broken, load_packaged_terminology())


def test_a_divided_daily_total_is_never_drafted_as_one_dose_a_day() -> None:
    """Tacrolimus for ILD is a daily total in divided doses (number unstated): no dose drafted."""
    dose, draft = DRAFTS["tacrolimus_ild_0_2_mg_kg"]
    dosage = draft["dosageInstruction"][0]
    assert dose.timing is None
    assert dose.period == "day"
    assert "doseAndRate" not in dosage
    assert "does not say in how many doses" in dosage["text"]
