"""The FHIR R4 Bundle to patient-state mapper: bundle files, focused rules and robustness."""

from __future__ import annotations

import copy
import datetime
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from myoguide.adapters.fhir import FhirWarning, MappingResult, bundle_to_state

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BUNDLES = HERE / "bundles"
SHARED_EXAMPLES = ROOT.parent / "shared" / "spec" / "examples"
GUIDELINE = ROOT / "src" / "myoguide" / "knowledge" / "data" / "guideline.yaml"

RXNORM: dict[str, str] = {
    str(a["rxnorm"]): str(a["id"])
    for a in yaml.safe_load(GUIDELINE.read_text(encoding="utf-8"))["agents"]
    if a.get("rxnorm")
}
CODE = {agent: code for code, agent in RXNORM.items()}
TODAY = datetime.date(2026, 6, 1)

SCT = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RX = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
STATUS_REASON = "http://terminology.hl7.org/CodeSystem/medicationrequest-status-reason"
DM, PM, IBM, ILD = "396230008", "31384009", "72315009", "233703007"
EXT = "https://myoguide.example/fhir/StructureDefinition/"
EXT_REFRACTORY = EXT + "ild-refractory"
EXT_EXCLUDED = EXT + "alternative-diagnoses-excluded"
EXT_CONTROL = EXT + "disease-control-achieved"

BUNDLE_FILES = sorted(BUNDLES.glob("*.json"))
# Fields of each worked example that FHIR cannot carry (each file's "about" says why): an
# explicitly empty treatment_history, since the mapper leaves an empty history out.
NOT_CARRIED: dict[str, set[str]] = {
    "child": set(),
    "flare-above-10mg": {"treatment_history"},
    "flare-at-10mg": set(),
    "flare-below-10mg": {"treatment_history"},
    "ild-refractory": set(),
    "resistant-dm": set(),
}
EXPECTED_WARNINGS: dict[str, set[str]] = {
    "child": {"course_from_condition"},
    "flare-above-10mg": {"course_from_condition"},
    "flare-at-10mg": {"course_from_condition"},
    "flare-below-10mg": {"course_from_condition"},
    "ild-refractory": {"history_outcome_read"},
    "resistant-dm": {"history_outcome_read"},
    "lb-in-units": {"course_from_condition", "history_outcome_read"},
    "medication-reference": {
        "birth_date_partial",
        "course_from_condition",
        "history_outcome_read",
        "medication_on_hold",
    },
    "messy": {
        "birth_date_partial",
        "control_unknown",
        "dose_text_only",
        "dose_unparseable",
        "entry_invalid",
        "entry_without_resource",
        "flare_unknown",
        "history_outcome_unknown",
        "ild_refractory_unknown",
        "medication_not_coded",
        "medication_not_ordered",
        "medication_reference_unresolved",
        "multiple_diagnoses",
        "observation_no_value",
        "observation_unit_unknown",
        "resource_type_missing",
        "severity_unknown",
    },
}


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def run(bundle: Any, today: datetime.date = TODAY) -> MappingResult:
    return bundle_to_state(bundle, evaluation_date=today, rxnorm_to_agent=RXNORM)


def codes(result: MappingResult) -> list[str]:
    return [w.code for w in result.warnings]


# --- builders for small synthetic bundles -------------------------------------------------------


def bundle(*resources: Any) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": r} for r in resources],
    }


def patient(birth: Any = "1970-01-15") -> dict[str, Any]:
    res: dict[str, Any] = {"resourceType": "Patient", "id": "p"}
    if birth is not None:
        res["birthDate"] = birth
    return res


def condition(
    code: str = DM,
    clinical: str | None = "relapse",
    *,
    rid: str = "c",
    verification: str | None = None,
    severity: str | None = None,
    recorded: str | None = None,
) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Condition",
        "id": rid,
        "code": {"coding": [{"system": SCT, "code": code}]},
    }
    if clinical is not None:
        res["clinicalStatus"] = {"coding": [{"system": CLINICAL, "code": clinical}]}
    if verification is not None:
        res["verificationStatus"] = {"coding": [{"system": VERIFICATION, "code": verification}]}
    if severity is not None:
        res["severity"] = {"coding": [{"system": SCT, "code": severity}]}
    if recorded is not None:
        res["recordedDate"] = recorded
    return res


def dosage(
    value: Any, unit: str = "mg", frequency: Any = 1, period: Any = 1, period_unit: Any = "d"
) -> dict[str, Any]:
    return {
        "timing": {"repeat": {"frequency": frequency, "period": period, "periodUnit": period_unit}},
        "doseAndRate": [{"doseQuantity": {"value": value, "system": UCUM, "code": unit}}],
    }


def rx(agent: str) -> dict[str, Any]:
    return {"coding": [{"system": RX, "code": CODE[agent]}]}


def request(
    agent: str,
    dose: Any = None,
    *,
    status: Any = "active",
    rid: str = "m",
    reason: Any = None,
    **extra: Any,
) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": status,
        "intent": "order",
        "medicationCodeableConcept": rx(agent),
    }
    if dose is not None:
        res["dosageInstruction"] = [dose]
    if reason is not None:
        res["statusReason"] = reason
    res.update(extra)
    return res


def statement(
    agent: str, dose: Any = None, *, status: str = "active", rid: str = "s", reason: Any = None
) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "MedicationStatement",
        "id": rid,
        "status": status,
        "medicationCodeableConcept": rx(agent),
    }
    if dose is not None:
        res["dosage"] = [dose]
    if reason is not None:
        res["statusReason"] = reason
    return res


def observation(
    loinc: str,
    value: Any,
    unit: str | None,
    when: str | None = "2026-05-01",
    *,
    rid: str = "o",
    status: str = "final",
    when_field: str = "effectiveDateTime",
) -> dict[str, Any]:
    quantity: dict[str, Any] = {"value": value}
    if unit is not None:
        quantity.update({"system": UCUM, "code": unit})
    res: dict[str, Any] = {
        "resourceType": "Observation",
        "id": rid,
        "status": status,
        "code": {"coding": [{"system": LOINC, "code": loinc}]},
        "valueQuantity": quantity,
    }
    if when is not None:
        res[when_field] = when
    return res


def weight(value: Any, unit: str | None = "kg", when: str | None = "2026-05-01", **kw: Any) -> Any:
    return observation("29463-7", value, unit, when, **kw)


def height(value: Any, unit: str | None = "cm", when: str | None = "2026-05-01", **kw: Any) -> Any:
    return observation("8302-2", value, unit, when, **kw)


def meds(*resources: Any) -> MappingResult:
    return run(bundle(patient(), condition(), *resources))


# --- the bundle files ---------------------------------------------------------------------------


def test_bundle_files_are_there() -> None:
    names = {p.stem for p in BUNDLE_FILES}
    assert set(NOT_CARRIED) <= names
    assert {"medication-reference", "lb-in-units", "messy"} <= names
    for path in BUNDLE_FILES:
        doc = load(path)
        assert set(doc) == {"about", "evaluation_date", "expected_state", "bundle"}, path.name
        assert doc["bundle"]["resourceType"] == "Bundle"
        assert doc["bundle"]["type"] == "collection"


@pytest.mark.parametrize("path", BUNDLE_FILES, ids=lambda p: p.stem)
def test_bundle_file_maps_to_expected_state(path: Path) -> None:
    doc = load(path)
    result = run(doc["bundle"], datetime.date.fromisoformat(doc["evaluation_date"]))
    assert result.state == doc["expected_state"]
    assert set(codes(result)) == EXPECTED_WARNINGS[path.stem]


@pytest.mark.parametrize("name", sorted(NOT_CARRIED))
def test_example_bundles_match_the_worked_examples(name: str) -> None:
    example = SHARED_EXAMPLES / f"{name}.json"
    if not example.is_file():
        pytest.skip(f"worked example {example} not available")
    wanted = load(example)["input"]
    expected = load(BUNDLES / f"{name}.json")["expected_state"]
    differing = {k for k in set(wanted) | set(expected) if wanted.get(k) != expected.get(k)}
    assert differing == NOT_CARRIED[name]
    for key in differing:  # the only gap left: an explicitly empty list the mapper leaves out
        assert wanted[key] == []
        assert key not in expected


def test_every_worked_example_but_bad_weight_has_a_bundle() -> None:
    if not SHARED_EXAMPLES.is_dir():
        pytest.skip("worked examples not available")
    examples = {p.stem for p in SHARED_EXAMPLES.glob("*.json")} - {"bad-weight"}
    assert examples <= {p.stem for p in BUNDLE_FILES}


def test_messages_never_show_names_identifiers_or_free_text() -> None:
    doc = load(BUNDLES / "messy.json")
    result = run(doc["bundle"], datetime.date.fromisoformat(doc["evaluation_date"]))
    shown = " ".join(f"{w.message} {w.resource}" for w in result.warnings)
    for secret in ("Zebulon", "Quixote", "MRN-000123", "pat-1", "1961", "about 170", "directed"):
        assert secret not in shown


def test_mapping_is_pure_and_deterministic() -> None:
    doc = load(BUNDLES / "messy.json")
    before = copy.deepcopy(doc["bundle"])
    first = run(doc["bundle"])
    assert doc["bundle"] == before
    assert run(doc["bundle"]) == first


def test_result_types() -> None:
    result = run(load(BUNDLES / "child.json")["bundle"])
    assert isinstance(result.warnings, tuple)
    assert all(isinstance(w, FhirWarning) for w in result.warnings)
    with pytest.raises(AttributeError):
        result.state = {}  # type: ignore[misc]


# --- top level ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [None, [], "Bundle", 3, {"resourceType": "Patient"}, {}, {"resourceType": ["Bundle"]}],
)
def test_not_a_bundle(value: Any) -> None:
    result = run(value)
    assert codes(result) == ["not_a_bundle"]
    assert result.state == {"current_medications": []}


def test_bundle_without_entries() -> None:
    assert "bundle_empty" in codes(run({"resourceType": "Bundle"}))
    assert "bundle_entries_invalid" in codes(run({"resourceType": "Bundle", "entry": {"a": 1}}))


def test_bad_entries_are_skipped_with_warnings() -> None:
    b = bundle(patient(), condition())
    b["entry"] += [None, 7, {"resource": "x"}, {"resource": {"id": "no-type"}}, {}]
    result = run(b)
    assert codes(result).count("entry_invalid") == 2
    assert codes(result).count("entry_without_resource") == 2
    assert codes(result).count("resource_type_missing") == 1
    assert result.state["diagnosis"] == "dermatomyositis"
    assert {w.resource for w in result.warnings if w.code == "entry_invalid"} == {
        "Bundle.entry[2]",
        "Bundle.entry[3]",
    }


# --- age ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("birth", "age", "warning"),
    [
        ("1970-06-01", 56, None),  # birthday today
        ("1970-06-02", 55, None),  # birthday tomorrow
        ("1970-05-31", 56, None),
        ("1964-02-29", 62, None),  # 29 February, evaluated in a common year after it
        ("2008-06-01", 18, None),
        ("2008-06-02", 17, None),
        ("1970-06-02T00:00:00Z", 55, None),  # a dateTime where a date belongs: its date part
        ("1970", 55, "birth_date_partial"),  # youngest possible: 31 December 1970
        ("1970-06", 55, "birth_date_partial"),  # youngest possible: 30 June 1970
        ("1970-05", 56, "birth_date_partial"),
        ("2008", 17, "birth_date_partial"),  # could still be 17: treated as 17
        ("2026", 0, "birth_date_partial"),  # born this year: the latest day is clamped to today
        ("2026-06-02", None, "birth_date_future"),
        ("2027", None, "birth_date_future"),
        ("1970-13-01", None, "birth_date_invalid"),
        ("1970-02-30", None, "birth_date_invalid"),
        ("70-01-01", None, "birth_date_invalid"),
        ("", None, "birth_date_invalid"),
        (19700101, None, "birth_date_invalid"),
        (["1970"], None, "birth_date_invalid"),
        (None, None, "birth_date_missing"),
    ],
)
def test_age(birth: Any, age: int | None, warning: str | None) -> None:
    result = run(bundle(patient(birth), condition()))
    assert result.state.get("age_years") == age
    age_warnings = [c for c in codes(result) if c.startswith("birth_date")]
    assert age_warnings == ([warning] if warning else [])


def test_evaluation_datetime_counts_as_its_date() -> None:
    moment = datetime.datetime(2026, 6, 1, 23, 59)
    assert run(bundle(patient("1970-06-02"), condition()), moment).state["age_years"] == 55


def test_no_patient_and_several_patients() -> None:
    result = run(bundle(condition()))
    assert "age_years" not in result.state
    assert "patient_missing" in codes(result)
    result = run(bundle(patient("1970-01-01"), patient("1990-01-01"), condition()))
    assert result.state["age_years"] == 56
    assert "multiple_patients" in codes(result)


# --- conditions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("clinical", "control", "flare"),
    [
        ("relapse", True, True),
        ("recurrence", True, True),
        ("remission", True, False),
        ("resolved", True, False),
        ("active", None, None),
        ("inactive", True, False),
        (None, None, None),
    ],
)
def test_clinical_status(clinical: str | None, control: bool | None, flare: bool | None) -> None:
    result = run(bundle(patient(), condition(PM, clinical)))
    assert result.state["diagnosis"] == "polymyositis"
    assert result.state.get("disease_control_achieved") == control
    assert result.state.get("flare") == flare
    unknown = {"control_unknown", "flare_unknown"} & set(codes(result))
    assert unknown == (set() if control is not None else {"control_unknown", "flare_unknown"})


@pytest.mark.parametrize(
    ("code", "severity"), [("255604002", "mild"), ("6736007", "moderate"), ("24484000", "severe")]
)
def test_severity(code: str, severity: str) -> None:
    result = run(bundle(patient(), condition(severity=code)))
    assert result.state["severity"] == severity
    assert "severity_unknown" not in codes(result)


def test_unknown_severity_is_left_out() -> None:
    result = run(bundle(patient(), condition(severity="12345")))
    assert "severity" not in result.state
    assert "severity_unknown" in codes(result)


def test_inclusion_body_myositis_is_an_out_of_scope_diagnosis() -> None:
    result = run(bundle(patient(), condition(IBM)))
    assert result.state["diagnosis"] == "inclusion_body_myositis"


@pytest.mark.parametrize("verification", ["refuted", "entered-in-error"])
def test_refuted_conditions_are_ignored(verification: str) -> None:
    result = run(
        bundle(
            patient(),
            condition(DM, verification=verification),
            condition(ILD, rid="i", verification=verification),
        )
    )
    assert "diagnosis" not in result.state
    assert "ild" not in result.state
    assert "diagnosis_missing" in codes(result)


def test_unconfirmed_diagnosis_is_used_with_a_warning() -> None:
    result = run(bundle(patient(), condition(DM, verification="provisional")))
    assert result.state["diagnosis"] == "dermatomyositis"
    assert "diagnosis_unconfirmed" in codes(result)


def test_no_myositis_condition() -> None:
    result = run(bundle(patient(), condition("38341003")))  # some other SNOMED CT code
    assert "diagnosis" not in result.state
    assert {"diagnosis_missing", "control_unknown", "flare_unknown"} <= set(codes(result))


def test_most_recently_recorded_diagnosis_wins() -> None:
    old = condition(DM, "remission", rid="dm", recorded="2019-04-01")
    new = condition(PM, "relapse", rid="pm", recorded="2025-04-01T10:00:00+02:00")
    undated = condition(IBM, "active", rid="ibm")
    for order in ([old, new, undated], [undated, new, old]):
        result = run(bundle(patient(), *order))
        assert result.state["diagnosis"] == "polymyositis"
        assert result.state["flare"] is True
        multiple = [w for w in result.warnings if w.code == "multiple_diagnoses"]
        assert len(multiple) == 1
        assert multiple[0].resource == "Condition/pm"


def test_same_diagnosis_twice_is_no_conflict() -> None:
    result = run(bundle(patient(), condition(rid="a"), condition(rid="b")))
    assert "multiple_diagnoses" not in codes(result)


def test_ild_without_extension_is_not_called_refractory() -> None:
    result = run(bundle(patient(), condition(), condition(ILD, "active", rid="ild")))
    assert result.state["ild"] == {"present": True, "refractory": False}
    assert "ild_refractory_unknown" in codes(result)
    assert "ild" not in run(bundle(patient(), condition())).state


def test_alternative_diagnoses_without_extension_are_unknown() -> None:
    result = run(bundle(patient(), condition()))
    assert "alternative_diagnoses_excluded" not in result.state
    assert "alternative_diagnoses_unknown" not in codes(result)


# --- stating extensions -------------------------------------------------------------------------


def stating(res: dict[str, Any], *extensions: Any) -> dict[str, Any]:
    """Return the resource with these extensions; (url, value) pairs become valueBoolean ones."""
    return {
        **res,
        "extension": [
            {"url": e[0], "valueBoolean": e[1]} if isinstance(e, tuple) else e for e in extensions
        ],
    }


NOT_BOOLEAN: list[Any] = [
    {"valueString": "true"},
    {"valueBoolean": "true"},
    {"valueBoolean": 1},
    {"valueBoolean": None},
    {"valueCode": "yes"},
    {},
]


@pytest.mark.parametrize("value", [True, False])
def test_ild_refractory_extension(value: bool) -> None:
    ild = stating(condition(ILD, "active", rid="ild"), (EXT_REFRACTORY, value))
    result = run(bundle(patient(), condition(), ild))
    assert result.state["ild"] == {"present": True, "refractory": value}
    assert not {"ild_refractory_unknown", "extension_invalid"} & set(codes(result))


@pytest.mark.parametrize("bad", NOT_BOOLEAN)
def test_ild_refractory_extension_not_boolean(bad: dict[str, Any]) -> None:
    ild = stating(condition(ILD, "active", rid="ild"), {"url": EXT_REFRACTORY, **bad})
    result = run(bundle(patient(), condition(), ild))
    assert result.state["ild"] == {"present": True, "refractory": False}
    assert "ild_refractory_unknown" in codes(result)
    invalid = [w for w in result.warnings if w.code == "extension_invalid"]
    assert len(invalid) == 1
    assert "http" not in invalid[0].message
    assert invalid[0].resource == "Condition/ild"


def test_ild_refractory_extension_conflicting_conditions() -> None:
    yes = stating(condition(ILD, "active", rid="a"), (EXT_REFRACTORY, True))
    no = stating(condition(ILD, "active", rid="b"), (EXT_REFRACTORY, False))
    result = run(bundle(patient(), condition(), yes, no))
    assert result.state["ild"] == {"present": True, "refractory": False}
    assert {"ild_refractory_conflict", "ild_refractory_unknown"} <= set(codes(result))
    # A Condition without the extension says nothing, so it does not conflict.
    result = run(bundle(patient(), condition(), yes, condition(ILD, "active", rid="c")))
    assert result.state["ild"] == {"present": True, "refractory": True}
    assert "ild_refractory_unknown" not in codes(result)


def test_ild_refractory_extension_is_read_only_on_ild() -> None:
    dm = stating(condition(), (EXT_REFRACTORY, True))
    result = run(bundle(patient(), dm))
    assert "ild" not in result.state
    # One Condition coded both ways carries the extension for its ILD code.
    both = stating(condition(), (EXT_REFRACTORY, True))
    both["code"]["coding"].append({"system": SCT, "code": ILD})
    result = run(bundle(patient(), both))
    assert result.state["diagnosis"] == "dermatomyositis"
    assert result.state["ild"] == {"present": True, "refractory": True}


def test_refuted_ild_condition_extension_is_ignored() -> None:
    ild = stating(condition(ILD, "active", rid="i", verification="refuted"), (EXT_REFRACTORY, 7))
    result = run(bundle(patient(), condition(), ild))
    assert "ild" not in result.state
    assert "extension_invalid" not in codes(result)


@pytest.mark.parametrize("value", [True, False])
def test_alternative_diagnoses_excluded_extension(value: bool) -> None:
    result = run(bundle(patient(), stating(condition(), (EXT_EXCLUDED, value))))
    assert result.state["alternative_diagnoses_excluded"] is value
    assert not {"alternative_diagnoses_unknown", "extension_invalid"} & set(codes(result))


@pytest.mark.parametrize("bad", NOT_BOOLEAN)
def test_alternative_diagnoses_excluded_extension_not_boolean(bad: dict[str, Any]) -> None:
    result = run(bundle(patient(), stating(condition(), {"url": EXT_EXCLUDED, **bad})))
    assert "alternative_diagnoses_excluded" not in result.state
    assert "alternative_diagnoses_unknown" not in codes(result)
    invalid = [w for w in result.warnings if w.code == "extension_invalid"]
    assert len(invalid) == 1
    assert "http" not in invalid[0].message
    assert invalid[0].resource == "Condition/c"


def test_alternative_diagnoses_extension_is_read_on_the_chosen_diagnosis_only() -> None:
    old = stating(condition(DM, rid="old", recorded="2019-01-01"), (EXT_EXCLUDED, True))
    new = condition(DM, rid="new", recorded="2025-01-01")
    result = run(bundle(patient(), old, new))
    assert "alternative_diagnoses_excluded" not in result.state
    assert "alternative_diagnoses_unknown" not in codes(result)
    # On an ILD Condition it states nothing about the myositis diagnosis.
    ild = stating(condition(ILD, "active", rid="i"), (EXT_EXCLUDED, True))
    assert "alternative_diagnoses_excluded" not in run(bundle(patient(), new, ild)).state


def test_repeated_extension_must_agree() -> None:
    same = stating(condition(), (EXT_EXCLUDED, True), (EXT_EXCLUDED, True))
    assert run(bundle(patient(), same)).state["alternative_diagnoses_excluded"] is True
    differ = stating(condition(), (EXT_EXCLUDED, True), (EXT_EXCLUDED, False))
    result = run(bundle(patient(), differ))
    assert "alternative_diagnoses_excluded" not in result.state
    assert "extension_invalid" in codes(result)
    # An invalid copy is not rescued by a later valid one.
    mixed = stating(condition(), {"url": EXT_EXCLUDED, "valueString": "x"}, (EXT_EXCLUDED, True))
    assert "alternative_diagnoses_excluded" not in run(bundle(patient(), mixed)).state


def test_unrelated_and_malformed_extensions_are_ignored() -> None:
    res = stating(
        condition(clinical="active"),
        {"url": "http://example.org/other", "valueBoolean": "not ours"},
        {"url": EXT + "something-else", "valueBoolean": True},
        {"valueBoolean": True},
        "not an object",
        (EXT_CONTROL, True),
    )
    result = run(bundle(patient(), res))
    assert result.state["disease_control_achieved"] is True
    assert "extension_invalid" not in codes(result)
    for shape in ("not a list", {"url": EXT_CONTROL, "valueBoolean": True}, None):
        result = run(bundle(patient(), {**condition(clinical="active"), "extension": shape}))
        assert "disease_control_achieved" not in result.state
        assert "control_unknown" in codes(result)


@pytest.mark.parametrize(
    ("clinical", "stated", "control", "flare", "warnings"),
    [
        # The clinical status does not settle control: the extension does.
        ("active", True, True, True, set()),
        ("active", False, False, False, set()),
        ("inactive", True, True, False, set()),
        ("inactive", False, True, False, {"control_conflict"}),
        (None, True, True, None, {"flare_unknown"}),
        (None, False, False, False, set()),
        ("unknown-code", False, False, False, set()),
        # The clinical status settles it: an agreeing extension changes nothing ...
        ("relapse", True, True, True, set()),
        ("recurrence", True, True, True, set()),
        ("remission", True, True, False, set()),
        ("resolved", True, True, False, set()),
        # ... and a disagreeing one is overruled, with a warning.
        ("relapse", False, True, True, {"control_conflict"}),
        ("recurrence", False, True, True, {"control_conflict"}),
        ("remission", False, True, False, {"control_conflict"}),
        ("resolved", False, True, False, {"control_conflict"}),
    ],
)
def test_disease_control_achieved_extension(
    clinical: str | None, stated: bool, control: bool, flare: bool | None, warnings: set[str]
) -> None:
    result = run(bundle(patient(), stating(condition(PM, clinical), (EXT_CONTROL, stated))))
    assert result.state["disease_control_achieved"] is control
    assert result.state.get("flare") is flare
    found = {"control_unknown", "flare_unknown", "control_conflict", "extension_invalid"}
    assert found & set(codes(result)) == warnings


@pytest.mark.parametrize("bad", NOT_BOOLEAN)
@pytest.mark.parametrize("clinical", ["active", "relapse"])
def test_disease_control_achieved_extension_not_boolean(bad: dict[str, Any], clinical: str) -> None:
    result = run(bundle(patient(), stating(condition(PM, clinical), {"url": EXT_CONTROL, **bad})))
    invalid = [w for w in result.warnings if w.code == "extension_invalid"]
    assert len(invalid) == 1
    assert "http" not in invalid[0].message
    assert "control_conflict" not in codes(result)
    if clinical == "active":
        assert "disease_control_achieved" not in result.state
        assert "flare" not in result.state
        assert {"control_unknown", "flare_unknown"} <= set(codes(result))
    else:  # the clinical status still settles it
        assert result.state["disease_control_achieved"] is True
        assert result.state["flare"] is True
        assert "control_unknown" not in codes(result)


def test_control_conflict_names_no_free_text() -> None:
    res = stating(condition(rid="secret-id-123", clinical="remission"), (EXT_CONTROL, False))
    res["note"] = [{"text": "Zebulon Quixote"}]
    result = run(bundle(patient(), res))
    conflict = [w for w in result.warnings if w.code == "control_conflict"]
    assert len(conflict) == 1
    assert "Zebulon" not in conflict[0].message
    assert conflict[0].resource == "Condition/secret-id-123"


# --- doses --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("agent", "dose", "expected"),
    [
        ("prednisone", dosage(5), {"value": 5, "unit": "mg/day"}),
        ("prednisone", dosage(5, frequency=2), {"value": 10, "unit": "mg/day"}),
        ("prednisone", dosage(7.5), {"value": 7.5, "unit": "mg/day"}),
        ("prednisone", dosage(10, period=2), {"value": 5, "unit": "mg/day"}),
        ("prednisone", dosage(10, period_unit="wk"), {"value": 10 / 7, "unit": "mg/day"}),
        ("prednisone", dosage(5.0), {"value": 5, "unit": "mg/day"}),
        ("methotrexate", dosage(15, period_unit="wk"), {"value": 15, "unit": "mg/week"}),
        (
            "methotrexate",
            dosage(2.5, frequency=6, period_unit="wk"),
            {"value": 15, "unit": "mg/week"},
        ),
        ("methotrexate", dosage(2.5), {"value": 17.5, "unit": "mg/week"}),
        ("azathioprine", dosage(50, frequency=3), {"value": 150, "unit": "mg/day"}),
        ("azathioprine", dosage(50, period=8, period_unit="h"), {"value": 150, "unit": "mg/day"}),
        ("mycophenolate_mofetil", dosage(1, "g", frequency=2), {"value": 2, "unit": "g/day"}),
        ("mycophenolate_mofetil", dosage(0.5, "g", frequency=3), {"value": 1.5, "unit": "g/day"}),
        ("tacrolimus", dosage(0.1, frequency=3), {"value": 0.3, "unit": "mg/day"}),
        ("etanercept", dosage(50, period_unit="wk"), {"value": 50, "unit": "mg/week"}),
        # An infusion agent is read per infusion, never spread over days (test_course_doses.py).
        ("rituximab", dosage(1, "g", period=2, period_unit="wk"), {"value": 1, "unit": "g/dose"}),
        ("prednisone", dosage(0), {"value": 0, "unit": "mg/day"}),
    ],
)
def test_dose_normalisation(agent: str, dose: dict[str, Any], expected: dict[str, Any]) -> None:
    result = meds(request(agent, dose))
    assert result.state["current_medications"] == [{"agent": agent, "dose": expected}]
    assert type(result.state["current_medications"][0]["dose"]["value"]) is type(expected["value"])
    assert not [c for c in codes(result) if c.startswith("dose_")]


def test_frequency_defaults_to_once() -> None:
    dose = dosage(20)
    del dose["timing"]["repeat"]["frequency"]
    result = meds(request("prednisone", dose))
    assert result.state["current_medications"] == [
        {"agent": "prednisone", "dose": {"value": 20, "unit": "mg/day"}}
    ]


def test_unit_text_is_used_when_there_is_no_code() -> None:
    dose = dosage(20)
    dose["doseAndRate"][0]["doseQuantity"] = {"value": 20, "unit": "mg"}
    result = meds(request("prednisone", dose))
    assert result.state["current_medications"][0]["dose"] == {"value": 20, "unit": "mg/day"}


def _broken(change: str) -> Any:
    dose = dosage(10)
    quantity = dose["doseAndRate"][0]["doseQuantity"]
    repeat = dose["timing"]["repeat"]
    if change == "no dosage":
        return None
    if change == "text only":
        return {"text": "as directed"}
    if change == "limit only":
        limit = {"numerator": {"value": 40, "code": "mg"}, "denominator": {"value": 1, "code": "d"}}
        return {"text": "as directed", "maxDosePerPeriod": limit}
    if change == "string value":
        quantity["value"] = "10"
    elif change == "bool value":
        quantity["value"] = True
    elif change == "negative":
        quantity["value"] = -5
    elif change == "mL":
        quantity["code"] = "mL"
    elif change == "mg/kg":
        quantity["code"] = "mg/kg"
    elif change == "no timing":
        del dose["timing"]
    elif change == "no period":
        del repeat["period"]
    elif change == "zero frequency":
        repeat["frequency"] = 0
    elif change == "month":
        repeat["periodUnit"] = "mo"
    elif change == "unit list":
        repeat["periodUnit"] = ["d"]
    elif change == "as needed":
        dose["asNeededBoolean"] = True
    elif change == "range without high":
        dose["doseAndRate"] = [{"doseRange": {"low": {"value": 5, "code": "mg"}}}]
    return dose


@pytest.mark.parametrize(
    ("change", "warning"),
    [
        ("no dosage", "dose_missing"),
        ("text only", "dose_text_only"),
        ("range without high", "dose_range_unusable"),
        ("string value", "dose_unparseable"),
        ("bool value", "dose_unparseable"),
        ("negative", "dose_unparseable"),
        ("mL", "dose_unit_unknown"),
        ("mg/kg", "dose_unit_unknown"),
        ("no timing", "dose_timing_missing"),
        ("no period", "dose_timing_unparseable"),
        ("zero frequency", "dose_timing_unparseable"),
        ("month", "dose_timing_unsupported"),
        ("unit list", "dose_timing_unsupported"),
        ("as needed", "dose_as_needed"),
        ("limit only", "dose_limit_only"),
    ],
)
def test_unusable_dose_lists_the_drug_without_dose(change: str, warning: str) -> None:
    result = meds(request("prednisone", _broken(change), rid="bad"))
    assert result.state["current_medications"] == [{"agent": "prednisone"}]
    found = [w for w in result.warnings if w.code == warning]
    assert len(found) == 1
    assert found[0].resource == "MedicationRequest/bad"


def test_a_maximum_alone_is_said_not_taken_for_the_dose() -> None:
    # Only maxDosePerPeriod (here with as-needed words in text): a ceiling, not a schedule.
    result = meds(request("prednisone", _broken("limit only"), rid="cap"))
    assert result.state["current_medications"] == [{"agent": "prednisone"}]
    found = next(w for w in result.warnings if w.code == "dose_limit_only")
    assert "only a maximum of 40 mg a day, not a regular dose" in found.message
    # With as-needed use the as-needed reading is said; with a dose, the dose is read.
    as_needed = {**_broken("limit only"), "asNeededBoolean": True}
    assert "dose_as_needed" in codes(meds(request("prednisone", as_needed)))
    dosed = {**dosage(10), "maxDosePerPeriod": _broken("limit only")["maxDosePerPeriod"]}
    result = meds(request("prednisone", dosed))
    assert result.state["current_medications"][0]["dose"] == {"value": 10, "unit": "mg/day"}


def test_several_dosage_instructions_are_not_guessed_from() -> None:
    res = request("methotrexate")
    res["dosageInstruction"] = [dosage(2.5, period_unit="wk"), dosage(2.5, period_unit="wk")]
    result = meds(res)
    assert result.state["current_medications"] == [{"agent": "methotrexate"}]
    assert "dose_ambiguous" in codes(result)


def test_the_same_agent_current_twice_is_listed_once_without_dose() -> None:
    result = meds(
        request("prednisone", dosage(5), rid="a"),
        statement("prednisone", dosage(2.5), rid="b"),
    )
    assert result.state["current_medications"] == [{"agent": "prednisone"}]
    assert "medication_duplicate" in codes(result)


# --- medication identity and status -------------------------------------------------------------


def _medication(rid: str, agent: str | None = None, **extra: Any) -> dict[str, Any]:
    res: dict[str, Any] = {"resourceType": "Medication", "id": rid}
    if agent is not None:
        res["code"] = rx(agent)
    res.update(extra)
    return res


def _by_reference(reference: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": "ref",
        "status": "active",
        "medicationReference": {"reference": reference},
        "dosageInstruction": [dosage(100)],
        **extra,
    }


@pytest.mark.parametrize(
    "reference",
    [
        "Medication/aza",
        "urn:uuid:7d1c1f3e-0000-4000-8000-000000000001",
        "http://example.org/fhir/Medication/aza",
        "http://example.org/fhir/Medication/aza/_history/3",
        "https://elsewhere.example/Medication/aza",
    ],
)
def test_medication_reference_resolution(reference: str) -> None:
    b = bundle(patient(), condition(), _by_reference(reference))
    b["entry"].append(
        {
            "fullUrl": "urn:uuid:7d1c1f3e-0000-4000-8000-000000000001",
            "resource": _medication("aza", "azathioprine"),
        }
    )
    b["entry"].append(
        {
            "fullUrl": "http://example.org/fhir/Medication/aza",
            "resource": _medication("aza", "azathioprine"),
        }
    )
    result = run(b)
    assert result.state["current_medications"] == [
        {"agent": "azathioprine", "dose": {"value": 100, "unit": "mg/day"}}
    ]


def test_contained_medication() -> None:
    res = _by_reference("#m1", contained=[_medication("m1", "azathioprine")])
    assert meds(res).state["current_medications"][0]["agent"] == "azathioprine"
    res = _by_reference("#other", contained=[_medication("m1", "azathioprine")])
    assert "medication_reference_unresolved" in codes(meds(res))


def test_unresolved_reference_and_missing_medication() -> None:
    result = meds(_by_reference("Medication/nowhere"))
    assert result.state["current_medications"] == []
    assert "medication_reference_unresolved" in codes(result)
    bare = {"resourceType": "MedicationRequest", "id": "x", "status": "active"}
    assert "medication_missing" in codes(meds(bare))


def test_ingredient_code_and_strength() -> None:
    form = {"system": "http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm", "code": "TAB"}
    medication = _medication(
        "mtx",
        code={"text": "methotrexate tablet"},
        ingredient=[
            {
                "itemCodeableConcept": rx("methotrexate"),
                "strength": {
                    "numerator": {"value": 2.5, "system": UCUM, "code": "mg"},
                    "denominator": {"value": 1, **form},
                },
            }
        ],
    )
    res = _by_reference("Medication/mtx")
    res["dosageInstruction"] = [
        {
            "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "wk"}},
            "doseAndRate": [{"doseQuantity": {"value": 6, **form}}],
        }
    ]
    result = meds(res, medication)
    assert result.state["current_medications"] == [
        {"agent": "methotrexate", "dose": {"value": 15, "unit": "mg/week"}}
    ]
    # A form unit the strength does not match cannot be converted.
    res["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"] = {"value": 6, "code": "CAP"}
    result = meds(res, medication)
    assert result.state["current_medications"] == [{"agent": "methotrexate"}]
    assert "dose_unit_unknown" in codes(result)


def test_unknown_and_ambiguous_codes_are_skipped() -> None:
    unknown = request("prednisone", dosage(5))
    unknown["medicationCodeableConcept"] = {"coding": [{"system": RX, "code": "99999999"}]}
    result = meds(unknown)
    assert result.state["current_medications"] == []
    assert [w.message for w in result.warnings if w.code == "medication_code_unknown"] == [
        "a drug coded only as RxNorm 99999999, with no name, could not be identified; "
        "listed as unresolved"
    ]
    assert result.state["unresolved_medications"] == [
        "RxNorm 99999999 not identified (an order, undated)"
    ]
    text_only = request("prednisone", dosage(5))
    text_only["medicationCodeableConcept"] = {"text": "prednisone 5 mg"}
    result = meds(text_only)
    assert "medication_matched_by_name" in codes(result)
    assert result.state["current_medications"] == [
        {"agent": "prednisone", "dose": {"value": 5, "unit": "mg/day"}}
    ]
    other_system = request("prednisone", dosage(5))
    other_system["medicationCodeableConcept"] = {
        "coding": [{"system": SCT, "code": CODE["prednisone"]}]
    }
    assert "medication_not_coded" in codes(meds(other_system))
    both = request("prednisone", dosage(5))
    both["medicationCodeableConcept"]["coding"].append({"system": RX, "code": CODE["methotrexate"]})
    result = meds(both)
    assert result.state["current_medications"] == []
    assert "medication_ambiguous" in codes(result)


@pytest.mark.parametrize(
    ("kind", "status", "where"),
    [
        ("request", "active", "current"),
        ("request", "on-hold", "current"),
        ("request", "completed", "history"),
        ("request", "stopped", "history"),
        ("request", "cancelled", None),
        ("request", "entered-in-error", None),
        ("request", "draft", None),
        ("request", "unknown", "warning"),
        ("request", None, "warning"),
        ("statement", "active", "current"),
        ("statement", "completed", "history"),
        ("statement", "stopped", "history"),
        ("statement", "intended", None),
        ("statement", "not-taken", None),
        ("statement", "entered-in-error", None),
        ("statement", "on-hold", "current"),
    ],
)
def test_medication_status(kind: str, status: str | None, where: str | None) -> None:
    if kind == "request":
        res = request("azathioprine", dosage(100), status=status)
    else:
        res = statement("azathioprine", dosage(100), status=str(status))
    result = meds(res)
    current = result.state["current_medications"]
    history = result.state.get("treatment_history", [])
    assert (current != []) == (where == "current")
    assert (history != []) == (where == "history")
    assert ("medication_status_unclear" in codes(result)) == (where == "warning")


def test_do_not_perform_is_not_a_medication() -> None:
    result = meds(request("methotrexate", dosage(15, period_unit="wk"), doNotPerform=True))
    assert result.state["current_medications"] == []
    assert "treatment_history" not in result.state


def test_empty_treatment_history_is_left_out() -> None:
    result = meds(request("prednisone", dosage(10)))
    assert "treatment_history" not in result.state
    stopped = request("azathioprine", status="stopped", rid="h", reason={"text": "Ineffective"})
    result = meds(request("prednisone", dosage(10)), stopped)
    assert result.state["treatment_history"] == [
        {"agent": "azathioprine", "outcome": "inadequate_response"}
    ]


# --- treatment history --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "outcome"),
    [
        ({"text": "Ineffective"}, "inadequate_response"),
        ({"text": "inadequate response after 3 months"}, "inadequate_response"),
        ({"text": "No response"}, "inadequate_response"),
        ({"text": "not effective"}, "inadequate_response"),
        ({"text": "Treatment failed"}, "inadequate_response"),
        ({"text": "did not respond"}, "inadequate_response"),
        ({"coding": [{"display": "Lack of efficacy"}]}, "inadequate_response"),
        ({"text": "Intolerance"}, "intolerance"),
        ({"text": "intolerant of the drug"}, "intolerance"),
        ({"text": "adverse reaction (hepatitis)"}, "intolerance"),
        ({"text": "Side effects"}, "intolerance"),
        ({"text": "allergic rash"}, "intolerance"),
        ({"coding": [{"system": STATUS_REASON, "code": "sintol"}]}, "intolerance"),
        ({"coding": [{"system": STATUS_REASON, "code": "salg"}]}, "intolerance"),
        ({"coding": [{"system": STATUS_REASON, "code": "sdupther"}]}, "unknown"),
        ({"coding": [{"system": "urn:other", "code": "sintol"}]}, "unknown"),
        ({"text": "ineffective and side effects"}, "unknown"),
        ({"text": "patient moved away"}, "unknown"),
        ({"coding": [{"code": ["sintol"]}]}, "unknown"),
        (None, "unknown"),
    ],
)
def test_history_outcome(reason: Any, outcome: str) -> None:
    result = meds(request("azathioprine", status="stopped", reason=reason, rid="h"))
    assert result.state["treatment_history"] == [{"agent": "azathioprine", "outcome": outcome}]
    unknown = [w for w in result.warnings if w.code == "history_outcome_unknown"]
    assert len(unknown) == (1 if outcome == "unknown" else 0)
    for w in unknown:
        assert w.resource == "MedicationRequest/h"


def test_statement_reasons_are_a_list_and_reason_code_is_never_an_outcome() -> None:
    listed = statement("methotrexate", status="stopped", reason=[{"text": "x"}, {"text": "Failed"}])
    assert meds(listed).state["treatment_history"] == [
        {"agent": "methotrexate", "outcome": "inadequate_response"}
    ]
    fallback = statement("methotrexate", status="stopped")
    fallback["reasonCode"] = [{"text": "side effect: nausea"}]  # why it was started
    assert meds(fallback).state["treatment_history"] == [
        {"agent": "methotrexate", "outcome": "unknown"}
    ]


def test_current_drug_with_failed_history_appears_in_both() -> None:
    result = meds(
        request("prednisone", dosage(20), rid="now"),
        statement("prednisone", status="stopped", reason=[{"text": "inadequate"}], rid="before"),
        statement("prednisone", status="completed", reason=[{"text": "inadequate"}], rid="again"),
    )
    assert result.state["current_medications"] == [
        {"agent": "prednisone", "dose": {"value": 20, "unit": "mg/day"}}
    ]
    assert result.state["treatment_history"] == [
        {"agent": "prednisone", "outcome": "inadequate_response"}
    ]


# --- observations -------------------------------------------------------------------------------


def test_latest_weight_by_effective_time_with_time_zones() -> None:
    result = run(
        bundle(
            weight(90, when="2026-05-20T09:00:00+02:00", rid="a"),  # 07:00 UTC
            weight(91, when="2026-05-20T08:00:00Z", rid="b"),  # latest
            weight(92, when="2026-05-19", rid="c"),
            weight(93, when=None, rid="d"),
        )
    )
    assert result.state["weight"] == {"value": 91, "unit": "kg"}
    assert "observation_undated" not in codes(result)


def test_issued_and_period_are_fallbacks() -> None:
    issued = weight(70, when="2026-05-10T00:00:00Z", rid="i", when_field="issued")
    period = weight(71, when=None, rid="p")
    period["effectivePeriod"] = {"start": "2026-05-01", "end": "2026-05-02"}
    assert run(bundle(period, issued)).state["weight"]["value"] == 70


def test_undated_weight_is_used_only_alone_and_with_a_warning() -> None:
    result = run(bundle(weight(70, when=None)))
    assert result.state["weight"] == {"value": 70, "unit": "kg"}
    assert "observation_undated" in codes(result)


def test_same_time_keeps_the_later_entry() -> None:
    result = run(bundle(weight(70, rid="a"), weight(71, rid="b")))
    assert result.state["weight"]["value"] == 71


@pytest.mark.parametrize("status", ["entered-in-error", "cancelled"])
def test_withdrawn_observations_are_ignored(status: str) -> None:
    result = run(
        bundle(weight(70, when="2026-01-01"), weight(99, when="2026-05-01", status=status))
    )
    assert result.state["weight"]["value"] == 70


@pytest.mark.parametrize(
    ("make", "value", "unit", "expected"),
    [
        (weight, 72.5, "kg", {"value": 72.5, "unit": "kg"}),
        (weight, 72500, "g", {"value": 72.5, "unit": "kg"}),
        (weight, 160, "[lb_av]", {"value": 160, "unit": "lb"}),
        (height, 172, "cm", {"value": 172, "unit": "cm"}),
        (height, 1.72, "m", {"value": 172, "unit": "cm"}),
        (height, 1.555, "m", {"value": 155.5, "unit": "cm"}),
        (height, 67.5, "[in_i]", {"value": 67.5, "unit": "in"}),
    ],
)
def test_observation_units(make: Any, value: Any, unit: str, expected: dict[str, Any]) -> None:
    kind = "weight" if make is weight else "height"
    result = run(bundle(make(value, unit)))
    assert result.state[kind] == expected
    assert type(result.state[kind]["value"]) is type(expected["value"])


def test_unit_text_without_code() -> None:
    obs = weight(150, unit=None)
    obs["valueQuantity"]["unit"] = "lbs"
    assert run(bundle(obs)).state["weight"] == {"value": 150, "unit": "lb"}


@pytest.mark.parametrize(
    ("value", "unit", "warning"),
    [
        (11, "[stone_av]", "observation_unit_unknown"),
        (70, None, "observation_unit_unknown"),
        (0, "kg", "observation_value_invalid"),
        (-3, "kg", "observation_value_invalid"),
        ("70", "kg", "observation_value_invalid"),
        (True, "kg", "observation_value_invalid"),
        (float("inf"), "kg", "observation_value_invalid"),
    ],
)
def test_unusable_weight_is_left_out(value: Any, unit: str | None, warning: str) -> None:
    result = run(bundle(weight(value, unit, rid="w")))
    assert "weight" not in result.state
    assert [(w.code, w.resource) for w in result.warnings if w.code.startswith("observation")] == [
        (warning, "Observation/w")
    ]


def test_an_unusable_latest_weight_falls_back_to_the_latest_usable_one() -> None:
    result = run(
        bundle(weight(70, "kg", when="2026-01-01"), weight(11, "[stone_av]", when="2026-05-01"))
    )
    assert result.state["weight"] == {"value": 70, "unit": "kg"}
    assert "observation_unit_unknown" in codes(result)


def test_observation_without_value_quantity() -> None:
    obs = weight(70)
    del obs["valueQuantity"]
    result = run(bundle(obs, weight(69, when="2025-01-01", rid="old")))
    assert result.state["weight"]["value"] == 69
    assert "observation_no_value" in codes(result)


# --- robustness (Hypothesis) --------------------------------------------------------------------

KEYS = [
    "resourceType",
    "id",
    "entry",
    "resource",
    "fullUrl",
    "status",
    "code",
    "coding",
    "system",
    "text",
    "display",
    "valueQuantity",
    "value",
    "unit",
    "effectiveDateTime",
    "effectivePeriod",
    "start",
    "end",
    "issued",
    "birthDate",
    "clinicalStatus",
    "verificationStatus",
    "severity",
    "recordedDate",
    "medicationCodeableConcept",
    "medicationReference",
    "reference",
    "dosageInstruction",
    "dosage",
    "doseAndRate",
    "doseQuantity",
    "timing",
    "repeat",
    "frequency",
    "period",
    "periodUnit",
    "statusReason",
    "reasonCode",
    "contained",
    "ingredient",
    "itemCodeableConcept",
    "strength",
    "numerator",
    "denominator",
    "doNotPerform",
    "asNeededBoolean",
    "extension",
    "url",
    "valueBoolean",
    "valueString",
]
WORDS = [
    "Bundle",
    "Patient",
    "Condition",
    "Observation",
    "MedicationRequest",
    "MedicationStatement",
    "Medication",
    "active",
    "on-hold",
    "stopped",
    "completed",
    "relapse",
    "remission",
    "refuted",
    "mg",
    "g",
    "kg",
    "m",
    "[lb_av]",
    "d",
    "wk",
    "h",
    "8640",
    "6851",
    "1256",
    DM,
    PM,
    IBM,
    ILD,
    "29463-7",
    "8302-2",
    "6736007",
    SCT,
    LOINC,
    RX,
    UCUM,
    CLINICAL,
    VERIFICATION,
    STATUS_REASON,
    "sintol",
    "Medication/x",
    "#x",
    "x",
    "2020-01-01",
    "1980",
    "1980-02",
    "2026-05-20T08:00:00Z",
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00+14:00",
    "ineffective",
    EXT_REFRACTORY,
    EXT_EXCLUDED,
    EXT_CONTROL,
]
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(WORDS)
    | st.text(max_size=12)
)
json_like = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=6)
    ),
    max_leaves=30,
)
RESOURCE_TYPES = [
    "Patient",
    "Condition",
    "Observation",
    "MedicationRequest",
    "MedicationStatement",
    "Medication",
    "MedicationAdministration",
    "AllergyIntolerance",
    "Encounter",
]
resources = st.builds(
    lambda rt, body: {**body, "resourceType": rt} if isinstance(body, dict) else body,
    st.sampled_from(RESOURCE_TYPES),
    json_like,
)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# The realistic charts are mutated too: they reach the terminology, timing-code, range, product,
# administration and allergy paths the older bundles do not.
VALID = [load(p)["bundle"] for p in BUNDLE_FILES + sorted((HERE / "charts").glob("*.json"))]


def check_result(result: MappingResult) -> None:
    assert isinstance(result, MappingResult)
    json.dumps(result.state, allow_nan=False)
    for w in result.warnings:
        assert isinstance(w, FhirWarning)
        assert isinstance(w.code, str)
        assert isinstance(w.message, str)
        assert w.resource is None or isinstance(w.resource, str)


@SETTINGS
@given(json_like)
def test_never_raises_on_any_top_level(value: Any) -> None:
    check_result(run(value))


@SETTINGS
@given(st.lists(json_like | st.fixed_dictionaries({"resource": resources}), max_size=6))
def test_never_raises_on_any_entries(entries: list[Any]) -> None:
    check_result(run({"resourceType": "Bundle", "entry": entries}))


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(_paths(v, (*prefix, i)))
    return out


@st.composite
def mutated_bundles(draw: st.DrawFn) -> Any:
    doc = copy.deepcopy(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_like)
    return doc


@SETTINGS
@given(mutated_bundles())
def test_never_raises_on_mutated_valid_bundles(value: Any) -> None:
    check_result(run(value))


@SETTINGS
@given(mutated_bundles())
def test_mutated_bundles_never_raise_without_a_caller_code_table(value: Any) -> None:
    # The default door: the packaged terminology alone, as the service layer may call it.
    result = bundle_to_state(value, evaluation_date=TODAY)
    check_result(result)
    labels = result.state.get("unresolved_medications", [])
    assert all(isinstance(x, str) and len(x) <= 200 for x in labels)


def test_an_observation_code_that_is_not_a_string_is_skipped() -> None:
    odd = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": ["29463-7"]}]},
        "valueQuantity": {"value": 70, "unit": "kg"},
    }
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": odd}]}
    mapped = bundle_to_state(bundle, evaluation_date=datetime.date(2026, 11, 1))
    assert "weight" not in mapped.state


@pytest.mark.parametrize(
    ("codings", "expected"),
    [
        # A broken coding before the weight's own does not hide it.
        ([{"code": ["x"]}, {"system": LOINC, "code": "29463-7"}], 70),
        (["not an object", {"system": LOINC, "code": "29463-7"}], 70),
        ([{"code": "29463-7"}, {"system": LOINC, "code": "29463-7"}], 70),
        # The weight's code in another system, or with no system, is not a weight.
        ([{"system": "http://snomed.info/sct", "code": "29463-7"}], None),
        ([{"code": "29463-7"}], None),
        # A lab code beside the weight's: the first body code read.
        ([{"system": LOINC, "code": "2157-6"}, {"system": LOINC, "code": "29463-7"}], 70),
    ],
)
def test_a_weight_is_found_among_any_codings(codings: list[Any], expected: Any) -> None:
    res = weight(70)
    res["code"] = {"coding": codings}
    mapped = run(bundle(patient(), res))
    assert mapped.state.get("weight", {}).get("value") == expected


class _Held(dict):  # type: ignore[type-arg]
    """A dict subclass: entries holding one take the reader's checked path, not its fast one."""


def _held(value: Any) -> Any:
    if isinstance(value, dict):
        return _Held({k: _held(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_held(v) for v in value]
    return value


@SETTINGS
@given(mutated_bundles())
def test_the_fast_path_reads_what_the_checked_path_reads(value: Any) -> None:
    # The entry loop reads the common shape without type checks; the checked path (taken for
    # any other shape, here forced by a dict subclass) must give the same state and warnings.
    fast = run(value)
    checked = run(_held(value))
    assert fast.state == checked.state
    assert fast.warnings == checked.warnings


# --- issue 17: charts as FHIR defines them --------------------------------------------------------

STATUS_REASON = "http://terminology.hl7.org/CodeSystem/medicationrequest-status-reason"


@pytest.mark.parametrize(
    ("reason", "outcome"),
    [
        ({"coding": [{"system": STATUS_REASON, "code": "sintol"}]}, "intolerance"),
        ({"coding": [{"system": STATUS_REASON, "code": "hospadm"}]}, "unknown"),
        ({"coding": [{"system": STATUS_REASON, "code": "altchoice"}]}, "unknown"),
        ({"text": "Prior authorization failed"}, "unknown"),
        ({"text": "Insurance no longer covers it; ineffective alternative not tried"}, "unknown"),
        ({"text": "Patient moved away"}, "unknown"),
        ({"text": "Inadequate response"}, "inadequate_response"),
    ],
)
def test_only_a_clinical_stopping_reason_makes_an_outcome(reason: Any, outcome: str) -> None:
    result = meds(request("methotrexate", status="stopped", reason=reason, rid="h"))
    assert result.state["treatment_history"] == [{"agent": "methotrexate", "outcome": outcome}]
    read = [w for w in result.warnings if w.code == "history_outcome_read"]
    assert len(read) == (0 if outcome == "unknown" else 1)


def test_the_indication_is_never_an_outcome() -> None:
    started = request("rituximab", status="stopped", rid="r")
    started["reasonCode"] = [{"text": "Dermatomyositis, failed methotrexate"}]
    result = meds(started)
    assert result.state["treatment_history"] == [{"agent": "rituximab", "outcome": "unknown"}]


@pytest.mark.parametrize("intent", ["proposal", "plan", "option"])
def test_a_proposal_or_plan_is_neither_use_nor_a_trial(intent: str) -> None:
    result = meds(request("azathioprine", dosage(100), intent=intent))
    assert result.state["current_medications"] == []
    assert "treatment_history" not in result.state
    assert "medication_not_ordered" in codes(result)


def test_order_dates_decide_whether_a_prescription_is_current() -> None:
    ended = dosage(100)
    ended["timing"]["repeat"]["boundsPeriod"] = {"start": "2025-01-01", "end": "2026-01-01"}
    later = dosage(100)
    later["timing"]["repeat"]["boundsPeriod"] = {"start": "2026-09-01"}
    result = meds(request("azathioprine", ended, rid="a"), request("methotrexate", later, rid="b"))
    assert result.state["current_medications"] == []
    assert result.state["treatment_history"] == [{"agent": "azathioprine", "outcome": "unknown"}]
    assert {"medication_ended", "medication_not_started"} <= set(codes(result))


def test_renewals_are_one_use_with_the_latest_dose() -> None:
    result = meds(
        request("prednisone", dosage(20), rid="a", authoredOn="2026-01-01"),
        request("prednisone", dosage(15), rid="b", authoredOn="2026-04-01"),
    )
    assert result.state["current_medications"] == [
        {"agent": "prednisone", "dose": {"value": 15, "unit": "mg/day"}}
    ]
    assert "medication_renewed" in codes(result)
    assert "unresolved_medications" not in result.state


def test_a_coded_look_alike_is_another_drug_but_an_uncoded_one_is_asked_about() -> None:
    coded = request("prednisone", dosage(5))
    coded["medicationCodeableConcept"] = {
        "coding": [{"system": RX, "code": "99999991", "display": "prednisoLONE 5 MG Oral Tablet"}]
    }
    assert "unresolved_medications" not in meds(coded).state
    uncoded = request("prednisone", dosage(5))
    uncoded["medicationCodeableConcept"] = {"text": "prednisoLONE 5 MG Oral Tablet"}
    assert meds(uncoded).state["unresolved_medications"] == [
        "medication resembling prednisone (an order, undated)"
    ]


def test_a_topical_form_is_left_out_and_said() -> None:
    res = request("tacrolimus", dosage(1))
    res["medicationCodeableConcept"] = {"text": "Tacrolimus 0.03% ointment"}
    result = meds(res)
    assert result.state["current_medications"] == []
    assert "unresolved_medications" not in result.state
    assert "medication_topical" in codes(result)


@pytest.mark.parametrize(
    ("extra", "deceased"),
    [
        ({"deceasedBoolean": True}, True),
        ({"deceasedDateTime": "2020-03-01T10:00:00Z"}, True),
        ({"deceasedDateTime": "2026-09-01"}, False),
        ({"deceasedBoolean": False}, False),
    ],
)
def test_a_stated_death_is_read(extra: dict[str, Any], deceased: bool) -> None:
    result = run(bundle({**patient(), **extra}, condition()))
    assert result.state.get("deceased", False) is deceased
    assert result.state["age_years"] == (50 if "deceasedDateTime" in extra and deceased else 56)


def test_weight_only_from_final_results_and_old_weights_named() -> None:
    result = run(
        bundle(
            weight(90, when="2026-05-01", status="preliminary"),
            weight(80, when="2025-03-01", status="corrected"),
        )
    )
    assert result.state["weight"] == {"value": 80, "unit": "kg"}
    old = [w for w in result.warnings if w.code == "weight_old"]
    assert len(old) == 1
    assert "2025-03-01" in old[0].message
    recent = run(bundle(weight(80, when="2025-07-01")))
    assert "weight_old" not in codes(recent)


def test_ounces_and_feet() -> None:
    result = run(bundle(weight(2400, "[oz_av]"), height(6, "[ft_i]")))
    assert result.state["weight"] == {"value": 150, "unit": "lb"}
    assert result.state["height"] == {"value": 72, "unit": "in"}


def test_the_engine_answers_a_deceased_patient_out_of_scope_with_no_dose(service: Any) -> None:
    state = run(bundle({**patient(), "deceasedBoolean": True}, condition(), weight(70))).state
    state["current_medications"] = [{"agent": "prednisone", "dose": {"value": 5, "unit": "mg/day"}}]
    answer = service.recommend(state)
    assert answer.course == "out_of_scope"
    assert answer.recommendations == ()
    assert next(w.code for w in answer.warnings) == "out_of_scope_deceased"
