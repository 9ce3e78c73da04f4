"""The knowledge as a CPG-style FHIR R4 Bundle, validated with the fhir.resources R4B models."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle

from myoguide.adapters.fhir.activities import (
    BASE,
    CS_DIRECTION,
    CS_QUALITY,
    CS_RECOMMENDATION,
    CS_STANCE,
    CS_STRENGTH,
    EXT_CAUTION_WHEN,
    EXT_DIRECTION,
    EXT_QUALITY,
    EXT_STRENGTH,
    PLAN_ID,
    fhir_id,
)
from myoguide.adapters.fhir.codes import RXNORM, UCUM
from myoguide.adapters.fhir.plandefinition import plandefinition_bundle
from myoguide.knowledge.loader import load_packaged
from myoguide.knowledge.model import Knowledge

KB: Knowledge = load_packaged()
BUNDLE: dict[str, Any] = plandefinition_bundle(KB)
RESOURCES: list[dict[str, Any]] = [e["resource"] for e in BUNDLE["entry"]]
PLAN: dict[str, Any] = RESOURCES[0]
ACTIVITIES: dict[str, dict[str, Any]] = {
    r["url"]: r for r in RESOURCES if r["resourceType"] == "ActivityDefinition"
}
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
STRENGTH = {"1": "strong", "2": "weak"}
QUALITY = {"A": "high", "B": "moderate", "C": "low"}


def _walk(actions: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for action in actions:
        yield action
        yield from _walk(action.get("action", []))


def _code(action: dict[str, Any], system: str) -> str | None:
    for concept in action.get("code", []):
        for coding in concept.get("coding", []):
            if coding["system"] == system:
                return str(coding["code"])
    return None


def _ext(element: dict[str, Any], url: str) -> str | None:
    found = [e for e in element.get("extension", []) if e["url"] == url]
    assert len(found) <= 1
    return str(found[0]["valueCodeableConcept"]["coding"][0]["code"]) if found else None


def _rec_actions() -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for action in _walk(PLAN["action"]):
        key = _code(action, CS_RECOMMENDATION)
        if key is not None:
            out.setdefault(key, []).append(action)
    return out


def _top(action_id: str) -> dict[str, Any]:
    return next(a for a in PLAN["action"] if a["id"] == action_id)


def _definitions(action: dict[str, Any]) -> list[str]:
    return [a["definitionCanonical"] for a in _walk([action]) if "definitionCanonical" in a]


def _activity(resource_id: str) -> dict[str, Any]:
    return ACTIVITIES[f"{BASE}/ActivityDefinition/{resource_id}"]


# ---- validity -------------------------------------------------------------------------------


def test_bundle_is_a_collection_led_by_the_plan_definition() -> None:
    assert BUNDLE["resourceType"] == "Bundle"
    assert BUNDLE["type"] == "collection"
    assert PLAN["resourceType"] == "PlanDefinition"
    assert PLAN["id"] == PLAN_ID
    assert PLAN["url"] == f"https://myoguide.example/fhir/PlanDefinition/{PLAN_ID}"
    assert PLAN["version"] == KB.knowledge_version
    assert PLAN["status"] == "active"
    assert PLAN["title"] == KB.title
    assert PLAN["description"]
    assert all(r["resourceType"] == "ActivityDefinition" for r in RESOURCES[1:])


def test_bundle_validates_with_fhir_resources_r4b() -> None:
    # fhir.resources 8 ships R4B (and STU3) besides R5; R4B is the release closest to R4.
    Bundle.model_validate(BUNDLE)
    for resource in RESOURCES:
        model = get_fhir_model_class(resource["resourceType"])
        assert model.__module__.startswith("fhir.resources.R4B.")
        model.model_validate(resource)


def test_ids_are_valid_and_unique() -> None:
    ids = [r["id"] for r in RESOURCES]
    assert len(ids) == len(set(ids))
    assert all(FHIR_ID.match(i) for i in [*ids, BUNDLE["id"]])
    urls = [e["fullUrl"] for e in BUNDLE["entry"]]
    assert len(urls) == len(set(urls))
    assert urls == [r["url"] for r in RESOURCES]
    action_ids = [a["id"] for a in _walk(PLAN["action"])]
    assert len(action_ids) == len(set(action_ids))
    assert all(FHIR_ID.match(i) for i in action_ids)


def test_fhir_id_converts_underscores_and_refuses_bad_ids() -> None:
    assert fhir_id("myoguide-dose", "ivig_2g_kg_monthly") == "myoguide-dose-ivig-2g-kg-monthly"
    with pytest.raises(ValueError, match="not a valid FHIR id"):
        fhir_id("a b")
    with pytest.raises(ValueError, match="not a valid FHIR id"):
        fhir_id("x" * 65)


def test_output_is_deterministic() -> None:
    first = json.dumps(plandefinition_bundle(KB), ensure_ascii=False)
    assert json.dumps(plandefinition_bundle(KB), ensure_ascii=False) == first
    assert json.dumps(plandefinition_bundle(load_packaged()), ensure_ascii=False) == first
    assert json.dumps(BUNDLE, ensure_ascii=False) == first


# ---- plan structure -----------------------------------------------------------------------


def test_top_level_actions_are_the_scenarios_then_the_rash_pointer() -> None:
    # The exclusion of other diagnoses sits outside every scenario, under its source's section.
    expected = [fhir_id(s) for s in KB.scenarios] + ["refractory-rash", "introduction"]
    assert [a["id"] for a in PLAN["action"]] == expected
    for sid, scenario in KB.scenarios.items():
        group = _top(fhir_id(sid))
        assert group["title"] == scenario.title
        assert group["description"] == scenario.summary
        assert group["action"]


def test_every_recommendation_is_an_action_with_its_grade_and_stance() -> None:
    found = _rec_actions()
    assert set(found) == set(KB.recommendations)
    for rec_id, actions in found.items():
        rec = KB.recommendations[rec_id]
        for action in actions:
            assert action["description"] == rec.text
            assert _code(action, CS_STANCE) == rec.stance
            strength, quality = _ext(action, EXT_STRENGTH), _ext(action, EXT_QUALITY)
            if rec.grade is None:
                assert strength is None
                assert quality is None
            else:
                assert strength == STRENGTH[rec.grade[0]]
                assert quality == QUALITY[rec.grade[1]]
            direction = "against" if rec.stance == "not_suggested" else "for"
            assert _ext(action, EXT_DIRECTION) == direction


@pytest.mark.parametrize(
    ("rec_id", "strength", "quality"),
    [
        ("resistant_ivig", "weak", "moderate"),
        ("resistant_alkylating", "strong", "low"),
        ("r2_raise_prednisone", "weak", "low"),
        ("resistant_rituximab", None, None),
        ("resistant_mycophenolate", None, None),
    ],
)
def test_grade_examples(rec_id: str, strength: str | None, quality: str | None) -> None:
    (action, *_) = _rec_actions()[rec_id]
    assert _ext(action, EXT_STRENGTH) == strength
    assert _ext(action, EXT_QUALITY) == quality
    if strength is not None:
        ext = next(e for e in action["extension"] if e["url"] == EXT_STRENGTH)
        assert ext["valueCodeableConcept"]["coding"][0]["system"] == CS_STRENGTH
        ext = next(e for e in action["extension"] if e["url"] == EXT_QUALITY)
        assert ext["valueCodeableConcept"]["coding"][0]["system"] == CS_QUALITY


def test_tnf_is_a_recommendation_against() -> None:
    (action,) = _rec_actions()["resistant_tnf"]
    ext = next(e for e in action["extension"] if e["url"] == EXT_DIRECTION)
    assert ext["valueCodeableConcept"]["coding"][0] == {
        "system": CS_DIRECTION,
        "code": "against",
        "display": "Against",
    }


def test_flare_scenarios_hold_their_recommendations_in_source_order() -> None:
    order = list(KB.recommendations)
    expected = {
        "flare-above-10mg": ["r1_add_sparing_agent", "r1_manage_as_resistant"],
        "flare-below-10mg": [
            "r2_raise_prednisone",
            "r2_raise_azathioprine",
            "r2_raise_methotrexate",
        ],
        "flare-off-prednisone-on-sparing-agent": [
            "r3_restart_prednisone",
            "r3_switch_to_methotrexate",
            "r3_switch_to_azathioprine",
            "r3_manage_as_resistant",
        ],
        "flare-off-immunosuppression": [
            "r4_restart_prednisone",
            "r4_sparing_agent",
            "r4_manage_as_resistant",
        ],
        "ild-refractory": ["ild_tacrolimus"],
        "refractory-rash": ["refractory_rash_pointer"],
    }
    for group_id, recs in expected.items():
        group = _top(group_id)
        got = [_code(a, CS_RECOMMENDATION) for a in group["action"]]
        assert got == recs
        assert got == sorted(got, key=lambda r: order.index(r or ""))
        assert group["selectionBehavior"] == "any"


def test_boundary_flare_shows_both_neighbouring_scenarios() -> None:
    group = _top("flare-at-10mg-boundary")
    parts = [[_code(a, CS_RECOMMENDATION) for a in part["action"]] for part in group["action"]]
    below = [_code(a, CS_RECOMMENDATION) for a in _top("flare-below-10mg")["action"]]
    above = [_code(a, CS_RECOMMENDATION) for a in _top("flare-above-10mg")["action"]]
    assert parts == [below, above]


def test_ladder_steps_are_groups_in_order() -> None:
    steps = _top("resistant")["action"]
    assert [s["prefix"] for s in steps] == [f"Step {s.step}" for s in KB.ladder]
    for i, (group, step) in enumerate(zip(steps, KB.ladder, strict=True)):
        assert group["groupingBehavior"] == "logical-group"
        assert group["description"] == step.note
        if i:
            assert group["relatedAction"] == [
                {"actionId": steps[i - 1]["id"], "relationship": "after-end"}
            ]
        if step.recommendations_pm is None:
            got = [_code(a, CS_RECOMMENDATION) for a in group["action"]]
            assert got == list(step.recommendations)
        else:
            assert group["selectionBehavior"] == "exactly-one"
            dm, pm = group["action"]
            assert [_code(a, CS_RECOMMENDATION) for a in dm["action"]] == list(step.recommendations)
            assert [_code(a, CS_RECOMMENDATION) for a in pm["action"]] == list(
                step.recommendations_pm
            )
    alternatives = steps[2]
    assert alternatives["selectionBehavior"] == "any"
    assert len(alternatives["action"]) == 4


def test_ild_path_runs_before_the_ladder() -> None:
    assert _top("ild-refractory")["relatedAction"] == [
        {"actionId": "resistant", "relationship": "before-start"}
    ]


# ---- sources, cautions and citations -----------------------------------------------------


def test_all_references_and_citations_are_related_artifacts() -> None:
    citations = {a["label"]: a for a in PLAN["relatedArtifact"] if a["type"] == "citation"}
    assert len(KB.references) == 31
    for ref in KB.references:
        artifact = citations[f"ref {ref.number}"]
        assert artifact["citation"] == ref.citation
    for c in KB.citations:
        assert citations[c.id]["citation"] == c.citation
    assert len(citations) == len(KB.references) + len(KB.citations)
    documents = [a["label"] for a in PLAN["relatedArtifact"] if a["type"] == "derived-from"]
    assert documents == [d.id for d in KB.documents]


def test_recommendation_sources_and_cautions_are_documented() -> None:
    for rec_id, actions in _rec_actions().items():
        rec = KB.recommendations[rec_id]
        for action in actions:
            docs = action["documentation"]
            derived = [(d["label"], d["display"]) for d in docs if d["type"] == "derived-from"]
            assert [label for label, _ in derived] == [s.document for s in rec.sources]
            for (_, display), source in zip(derived, rec.sources, strict=True):
                assert display.startswith(source.section)
                assert all(str(n) in display for n in source.references)
            labels = {d["label"] for d in docs if d["type"] == "citation"}
            for source in rec.sources:
                assert {f"ref {n}" for n in source.references} <= labels
                assert set(source.citations) <= labels
            cautions = [d for d in docs if d["type"] == "documentation"]
            assert [d["label"] for d in cautions] == [*rec.cautions, *rec.cautions_if_ild]
            for d in cautions:
                assert d["display"] == KB.cautions[d["label"]].text
                ild_only = d["label"] in rec.cautions_if_ild
                assert (EXT_CAUTION_WHEN in {e["url"] for e in d.get("extension", [])}) == ild_only


# ---- activity definitions ----------------------------------------------------------------


def test_every_definition_canonical_resolves() -> None:
    canonicals = _definitions({"action": PLAN["action"]})
    assert canonicals
    assert set(canonicals) <= set(ACTIVITIES)
    assert set(ACTIVITIES) == set(canonicals) | {
        _activity(fhir_id("myoguide-dose", r))["url"] for r in KB.dose_rules
    }


def test_recommendations_point_to_their_agents_and_regimens() -> None:
    for rec_id, actions in _rec_actions().items():
        rec = KB.recommendations[rec_id]
        for action in actions:
            want = [
                f"{BASE}/ActivityDefinition/" + fhir_id("myoguide-dose", reg)
                if step.regimens
                else f"{BASE}/ActivityDefinition/" + fhir_id("myoguide-agent", step.agent)
                for step in rec.agents
                for reg in (step.regimens or ("",))
            ]
            assert _definitions(action) == want


def test_one_medication_activity_per_dose_rule() -> None:
    for rule_id, rule in KB.dose_rules.items():
        ad = _activity(fhir_id("myoguide-dose", rule_id))
        assert ad["kind"] == "MedicationRequest"
        assert ad["intent"] == "proposal"
        assert ad["status"] == "active"
        assert ad["version"] == KB.knowledge_version
        agent = KB.agent(rule.agent)
        product = ad["productCodeableConcept"]
        assert product["text"] == agent.display
        if agent.rxnorm is None:
            assert "coding" not in product
        else:
            assert product["coding"] == [
                {"system": RXNORM, "code": agent.rxnorm, "display": agent.display}
            ]
        assert "dynamicValue" not in ad
        assert ad["dosage"][0]["text"]


def test_ivig_activities_have_no_rxnorm_coding() -> None:
    ivig = [a for a in ACTIVITIES.values() if "IVIG" in a["productCodeableConcept"]["text"]]
    assert len(ivig) == 2
    for ad in ivig:
        assert ad["productCodeableConcept"] == {"text": KB.agent("ivig").display}
        assert RXNORM not in json.dumps(ad)


def _max(ad: dict[str, Any]) -> tuple[int | float, str, str]:
    ratio = ad["dosage"][0]["maxDosePerPeriod"]
    assert ratio["numerator"]["system"] == UCUM
    assert ratio["denominator"]["value"] == 1
    return ratio["numerator"]["value"], ratio["numerator"]["code"], ratio["denominator"]["code"]


@pytest.mark.parametrize(
    ("resource_id", "expected"),
    [
        ("myoguide-agent-azathioprine", (200, "mg", "d")),
        ("myoguide-dose-azathioprine-raise-to-max", (200, "mg", "d")),
        ("myoguide-dose-azathioprine-combination", (200, "mg", "d")),
        ("myoguide-agent-methotrexate", (25, "mg", "wk")),
        ("myoguide-dose-methotrexate-raise-to-max", (25, "mg", "wk")),
        ("myoguide-dose-methotrexate-combination", (25, "mg", "wk")),
    ],
)
def test_stated_maxima_are_max_dose_per_period(
    resource_id: str, expected: tuple[int, str, str]
) -> None:
    assert _max(_activity(resource_id)) == expected


def test_fixed_amounts_are_structured_and_weight_based_ones_are_text() -> None:
    rituximab = _activity("myoguide-dose-rituximab-two-1g-one-week-apart")["dosage"][0]
    assert rituximab["doseAndRate"] == [
        {"doseQuantity": {"value": 1, "unit": "g", "system": UCUM, "code": "g"}}
    ]
    assert rituximab["route"]["coding"][0]["code"] == "47625008"  # intravenous (knowledge)
    mmf = _activity("myoguide-dose-mycophenolate-1-to-1-5g-bid")["dosage"][0]
    assert mmf["route"]["coding"][0]["code"] == "26643006"  # oral
    assert mmf["doseAndRate"][0]["doseRange"]["low"]["value"] == 1
    assert mmf["doseAndRate"][0]["doseRange"]["high"]["value"] == 1.5
    for rule_id, rate in [
        ("ivig_2g_kg_monthly", "2 g/kg per course"),
        ("ivig_1g_kg_day_two_days", "1 g/kg per day"),
        ("tacrolimus_0_075_mg_kg", "0.075 mg/kg per day"),
        ("rituximab_375_m2_weekly", "375 mg/m2 per dose"),
        ("cyclophosphamide_iv_300_800_m2", "300 to 800 mg/m2 per dose"),
        ("prednisone_r2_range", "20 mg per day up to 1 mg/kg per day"),
    ]:
        ad = _activity(fhir_id("myoguide-dose", rule_id))
        assert rate in ad["description"]
        assert ad["dosage"][0]["text"].startswith(rate)
        assert "doseAndRate" not in ad["dosage"][0]


def test_required_binding_codes_are_r4_codes() -> None:
    # fhir.resources checks structure and types but not required-binding code values.
    grouping = {"visual-group", "logical-group", "sentence-group"}
    selection = {"any", "all", "all-or-none", "exactly-one", "at-most-one", "one-or-more"}
    relationship = {"before-start", "after-end"}  # a subset of action-relationship-type
    artifact_types = {"documentation", "justification", "citation", "derived-from"}
    for action in _walk(PLAN["action"]):
        assert action.get("groupingBehavior", "logical-group") in grouping
        assert action.get("selectionBehavior", "any") in selection
        assert {r["relationship"] for r in action.get("relatedAction", [])} <= relationship
        assert {d["type"] for d in action.get("documentation", [])} <= artifact_types
    for resource in RESOURCES:
        assert resource["status"] == "active"
        assert {a["type"] for a in resource.get("relatedArtifact", [])} <= artifact_types
    for ad in ACTIVITIES.values():
        assert (ad["kind"], ad["intent"], ad["doNotPerform"]) == (
            "MedicationRequest",
            "proposal",
            False,
        )
