"""The terminology table: well formed, every code cited, no duplicates, the 13 agents."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "src" / "myoguide" / "knowledge" / "data"
TERMINOLOGY = DATA / "terminology.yaml"

AGENT_IDS = frozenset(
    {
        "prednisone",
        "azathioprine",
        "methotrexate",
        "rituximab",
        "ivig",
        "mycophenolate_mofetil",
        "cyclosporine",
        "tacrolimus",
        "cyclophosphamide",
        "chlorambucil",
        "etanercept",
        "infliximab",
        "adalimumab",
    }
)
MEANINGS = frozenset(
    {"dermatomyositis", "polymyositis", "juvenile", "other_myositis", "unresolved"}
)
SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
DIAGNOSIS_SYSTEMS = frozenset({SNOMED, ICD10CM, ICD10})
# ICD-10-CM codes that state respiratory involvement (FY2021 tabular list).
LUNG_CODES = frozenset({"M33.01", "M33.11", "M33.21", "M33.91"})


@pytest.fixture(scope="module")
def term() -> dict[str, Any]:
    data = yaml.safe_load(TERMINOLOGY.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _coded_entries(term: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every (system, code) entry of the table, with where it sits."""
    out: list[tuple[str, dict[str, Any]]] = []
    out += [(f"diagnoses[{i}]", d) for i, d in enumerate(term["diagnoses"])]
    for agent in term["agents"]:
        ing = agent["ingredient"]
        if ing is not None:
            out.append((f"agents.{agent['id']}.ingredient", {**ing, "system": RXNORM}))
        out += [
            (f"agents.{agent['id']}.products[{i}]", {**p, "system": RXNORM})
            for i, p in enumerate(agent["products"])
        ]
    for kind, entries in term["observations"].items():
        out += [(f"observations.{kind}[{i}]", e) for i, e in enumerate(entries)]
    return out


def test_version_is_a_dotted_string(term: dict[str, Any]) -> None:
    assert isinstance(term["terminology_version"], str)
    assert re.fullmatch(r"\d{4}\.\d+\.\d+", term["terminology_version"])


def test_every_entry_has_system_code_display_source(term: dict[str, Any]) -> None:
    for where, entry in _coded_entries(term):
        for key in ("system", "code", "display", "source"):
            value = entry.get(key)
            assert isinstance(value, str), f"{where}: {key} missing or not text"
            assert value.strip(), f"{where}: {key} is empty"


def test_no_duplicate_system_code(term: dict[str, Any]) -> None:
    seen: dict[tuple[str, str], str] = {}
    for where, entry in _coded_entries(term):
        key = (entry["system"], entry["code"])
        assert key not in seen, f"{where} repeats {key} of {seen[key]}"
        seen[key] = where


def test_agents_are_the_thirteen_once_each(term: dict[str, Any]) -> None:
    ids = [a["id"] for a in term["agents"]]
    assert len(ids) == len(set(ids)), "an agent is listed twice"
    assert set(ids) <= AGENT_IDS, f"unknown agent ids: {set(ids) - AGENT_IDS}"
    assert set(ids) == AGENT_IDS, f"agents missing: {AGENT_IDS - set(ids)}"


def test_rxcuis_are_digits_and_ttys_fit(term: dict[str, Any]) -> None:
    for agent in term["agents"]:
        ing = agent["ingredient"]
        if ing is not None:
            assert re.fullmatch(r"\d+", ing["code"]), f"{agent['id']}: ingredient {ing['code']}"
            assert ing["tty"] == "IN"
        for p in agent["products"]:
            assert re.fullmatch(r"\d+", p["code"]), f"{agent['id']}: product {p['code']}"
            assert p["tty"] in {"SCD", "SBD"}
            # An SBD names its brand in brackets; an SCD does not.
            assert ("[" in p["display"]) == (p["tty"] == "SBD"), p["display"]
            assert p["amount"]["value"] > 0
            assert p["amount"]["unit"] == "mg"
            assert isinstance(p["per"], str)
            assert p["per"]


def test_products_without_an_ingredient_are_impossible(term: dict[str, Any]) -> None:
    for agent in term["agents"]:
        if agent["ingredient"] is None:
            assert agent["products"] == [], f"{agent['id']} has products but no ingredient"


def test_diagnoses_meaning_and_system(term: dict[str, Any]) -> None:
    assert set(term["diagnosis_meanings"]) == MEANINGS
    for i, d in enumerate(term["diagnoses"]):
        assert d["meaning"] in MEANINGS, f"diagnoses[{i}]: {d['meaning']}"
        assert d["system"] in DIAGNOSIS_SYSTEMS, f"diagnoses[{i}]: {d['system']}"
        assert d.get("lung_involvement", False) in (True, False)


def test_lung_involvement_only_on_the_respiratory_codes(term: dict[str, Any]) -> None:
    flagged = {d["code"] for d in term["diagnoses"] if d.get("lung_involvement")}
    assert flagged == LUNG_CODES
    for d in term["diagnoses"]:
        if d.get("lung_involvement"):
            assert "respiratory" in d["display"].lower()


def test_adult_dm_and_pm_are_both_covered_in_each_system(term: dict[str, Any]) -> None:
    for system in DIAGNOSIS_SYSTEMS:
        meanings = {d["meaning"] for d in term["diagnoses"] if d["system"] == system}
        assert {"dermatomyositis", "polymyositis"} <= meanings, system


def test_observation_codes_look_like_loinc(term: dict[str, Any]) -> None:
    assert set(term["observations"]) == {"body_weight", "body_height"}
    for entries in term["observations"].values():
        assert entries
        for e in entries:
            assert e["system"] == LOINC
            assert re.fullmatch(r"\d{1,7}-\d", e["code"]), e["code"]


def test_unit_spellings_map_to_one_ucum_code_each(term: dict[str, Any]) -> None:
    units = term["units"]
    assert isinstance(units["source"], str)
    assert units["source"]
    owner: dict[str, str] = {}
    for u in units["to_ucum"]:
        assert u["ucum"]
        assert u["spellings"]
        for s in u["spellings"]:
            key = s.strip()
            assert owner.get(key, u["ucum"]) == u["ucum"], f"{s!r} maps to two units"
            owner[key] = u["ucum"]
    for spelling in ("milligram", "milligrams", "MG", "mg.", "gram"):
        assert spelling in owner, spelling


def test_not_verified_codes_are_absent(term: dict[str, Any]) -> None:
    present = {(e["system"], e["code"]) for _, e in _coded_entries(term)}
    for item in term["not_verified"]:
        assert item["finding"]
        if item.get("code") and re.fullmatch(r"[\w.-]+", item["code"]):
            assert (item["system"], item["code"]) not in present, item["code"]


def test_ingredients_agree_with_the_guideline(term: dict[str, Any]) -> None:
    guideline = yaml.safe_load((DATA / "guideline.yaml").read_text(encoding="utf-8"))
    gl = {a["id"]: a["rxnorm"] for a in guideline["agents"]}
    for agent in term["agents"]:
        ing = agent["ingredient"]
        if ing is not None:
            assert gl[agent["id"]] == ing["code"], agent["id"]


# --- the typed loader ---------------------------------------------------------------------------


def test_packaged_terminology_loads_with_its_lookups() -> None:
    from myoguide.knowledge.terminology import load_packaged_terminology

    t = load_packaged_terminology()
    assert t.diagnosis(ICD10CM, "M33.11") is not None
    assert t.diagnosis(ICD10CM, "M3311") == t.diagnosis(ICD10CM, "M33.11")
    coded = t.agent_for_code("312617")
    assert coded is not None
    assert coded.agent == "prednisone"
    assert coded.product is not None
    assert (coded.product.amount.value, coded.product.per) == (5, "tablet")
    assert t.agent_for_name("Methotrexate Sodium 2.5 MG Oral Tablet").agents == ("methotrexate",)
    assert t.agent_for_name("prednisolone 5 mg").kind == "near"
    assert t.agent_for_name("tacrolimus 0.1 % Topical Ointment").kind == "topical"
    assert t.agent_for_name("24 HR tacrolimus 1 MG Extended Release Oral Tablet").kind == "agent"
    assert t.agent_for_name("tacrolimus 5 MG/ML Injectable Solution").kind == "agent"
    assert t.agent_for_name("lisinopril 10 mg").kind == "unrelated"
    assert t.ucum("milligrams") == "mg"
    assert {"29463-7", "3141-9", "18833-4"} == t.weight_codes


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda d: d["diagnoses"][0].update(meaning="adult"), "diagnoses[0].meaning"),
        (lambda d: d["agents"][2]["products"][0].pop("amount"), "agents.methotrexate.products[0]"),
        (lambda d: d["agents"].append(dict(d["agents"][0])), "agents.prednisone"),
    ],
)
def test_loader_fails_closed_naming_file_and_key(change: Any, key: str) -> None:
    from myoguide.errors import KnowledgeError
    from myoguide.knowledge.terminology import parse_terminology

    data = yaml.safe_load(TERMINOLOGY.read_text(encoding="utf-8"))
    change(data)
    with pytest.raises(KnowledgeError) as caught:
        parse_terminology(yaml.safe_dump(data), origin="t.yaml")
    assert caught.value.file == "t.yaml"
    assert caught.value.key.startswith(key), caught.value.key
