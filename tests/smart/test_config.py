"""The trust file's `smart` section, the scopes asked and how granted scopes are read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from myoguide.adapters.smart.config import parse_smart, scopes
from myoguide.adapters.smart.launch import _missing_scopes
from myoguide.bootstrap import ServeConfig, load_smart, load_trust, smart_url
from myoguide.errors import InputError


def test_a_file_with_only_smart_ehrs_loads_and_matches_iss_with_or_without_slash(
    tmp_path: Path,
) -> None:
    path = tmp_path / "trust.json"
    ehr = {"iss": "https://ehr.example/fhir/", "client_id": "myoguide", "client_secret": "s"}
    path.write_text(json.dumps({"smart": [ehr]}))
    assert load_trust(path) == ()
    ehrs = load_smart(path)
    assert ehrs is not None
    found = ehrs.get("https://ehr.example/fhir")
    assert found is not None
    assert found.client_secret == "s"
    assert ehrs.get("https://ehr.example/fhir/x") is None
    assert ehrs.get("https://ehr.example/FHIR") is None


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"client_id": "x"}, "smart[0].iss"),
        ({"iss": "https://e.example", "client_id": ""}, "smart[0].client_id"),
        ({"iss": "http://e.example", "client_id": "x"}, "smart[0].iss"),
        ({"iss": "https://e.example", "client_id": "x", "client_secret": 5}, "client_secret"),
    ],
)
def test_a_wrong_entry_is_refused_naming_the_field(entry: dict[str, object], field: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_smart({"smart": [entry]})
    assert field in caught.value.field


def test_twice_the_same_iss_is_refused() -> None:
    entry = {"iss": "https://e.example/fhir", "client_id": "x"}
    with pytest.raises(InputError):
        parse_smart({"smart": [entry, {**entry, "iss": "https://e.example/fhir/"}]})


def test_the_scopes_asked() -> None:
    assert scopes(ehr_launch=True).split()[:3] == ["launch", "openid", "fhirUser"]
    assert scopes(ehr_launch=False).split()[0] == "launch/patient"
    assert "patient/AllergyIntolerance.rs" in scopes(ehr_launch=True).split()


def test_granted_scopes_are_read_as_v2_letters_or_v1_words() -> None:
    assert _missing_scopes(None) == []
    everything = "patient/*.rs"
    assert _missing_scopes(everything) == []
    assert _missing_scopes("patient/*.read") == []
    assert _missing_scopes("user/*.cruds") == []
    # Write without read, search without read and an unknown suffix do not let the app read.
    for granted in ("patient/*.write", "patient/*.s", "patient/*.rx"):
        assert len(_missing_scopes(granted)) == 7, granted
    narrower = "patient/Patient.rs patient/Condition.r patient/Observation.rs?category=vital-signs"
    assert _missing_scopes(narrower) == [
        "MedicationRequest",
        "MedicationStatement",
        "MedicationAdministration",
        "AllergyIntolerance",
    ]


def test_off_loopback_the_redirect_url_must_be_given(tmp_path: Path) -> None:
    config = ServeConfig((), False, None, tmp_path, host="0.0.0.0")
    with pytest.raises(InputError) as caught:
        smart_url(config)
    assert caught.value.field == "--public-url"
    given = ServeConfig((), False, None, tmp_path, public_base_url="https://m.example/")
    assert smart_url(given) == "https://m.example"
    assert smart_url(ServeConfig((), False, None, tmp_path, port=8123)) == "http://127.0.0.1:8123"
