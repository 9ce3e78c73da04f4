"""In process: a signed-in clinician's decision names them on the record and in its export."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from myoguide.bootstrap import ServeConfig, build_http_app, record_stores

PASSWORD = "correct horse battery"
FIELDS = {
    "age_years": "58",
    "diagnosis": "dermatomyositis",
    "weight.value": "72",
    "weight.unit": "kg",
    "height.value": "165",
    "height.unit": "cm",
    "alternative_diagnoses_excluded": "yes",
    "disease_control_achieved": "yes",
    "flare": "yes",
    "current_medications[0].agent": "prednisone",
    "current_medications[0].dose.value": "20",
    "current_medications[0].dose.unit": "mg/day",
    "treatment_history[0].agent": "methotrexate",
    "treatment_history[0].outcome": "inadequate_response",
}


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match
    return match.group(1)


def _decide(client: TestClient) -> dict[str, object]:
    """Add a patient, save a visit with its answer, accept it; return the patient's export."""
    res = client.post(
        "/patients", data={"csrf": _csrf(client.get("/patients").text), "label": "P-1"}
    )
    assert res.status_code == 303
    patient_id = res.headers["location"].rsplit("/", 1)[1]
    page = client.get(f"/assess?patient={patient_id}").text
    data = {"csrf": _csrf(page), "patient_id": patient_id, "action": "save", **FIELDS}
    answered = client.post("/assess", data=data)
    assert answered.status_code == 200, answered.text[:500]
    answer = re.search(r'action="/answers/(\d+)/decision"', answered.text)
    assert answer
    # A flare at 20 mg/day ties azathioprine and methotrexate first: accepting names one of them.
    chosen = answered.text.split('name="chosen"', 1)[1]
    first = re.search(r'<option value="([^"]+)"', chosen)
    assert first
    decided = client.post(
        f"/answers/{answer.group(1)}/decision",
        data={
            "csrf": data["csrf"],
            "patient_id": patient_id,
            "decision": "accepted",
            "chosen": first.group(1),
        },
    )
    assert decided.status_code == 303
    export = client.get(f"/patients/{patient_id}/export.json")
    assert export.status_code == 200
    record: dict[str, object] = export.json()
    return record


def test_a_signed_in_users_decision_records_their_username(tmp_path: Path) -> None:
    config = ServeConfig((), False, None, tmp_path, require_login=True, host="0.0.0.0")  # type: ignore[arg-type]
    _, users = record_stores(config)
    users.add_user("dr-a", PASSWORD)
    with TestClient(build_http_app(config), follow_redirects=False) as client:
        login = {"csrf": _csrf(client.get("/login").text), "username": "dr-a"}
        res = client.post("/login", data={**login, "password": PASSWORD, "next": "/"})
        assert res.status_code == 303
        record = _decide(client)
    (decision,) = record["decisions"]  # type: ignore[misc]
    assert decision["clinician"] == "dr-a"
    assert record["patient"]["ehr_iss"] is None  # type: ignore[index]


def test_without_sign_in_a_decision_names_nobody(tmp_path: Path) -> None:
    config = ServeConfig((), False, None, tmp_path, require_login=False)
    with TestClient(build_http_app(config), follow_redirects=False) as client:
        record = _decide(client)
    (decision,) = record["decisions"]  # type: ignore[misc]
    assert decision["clinician"] is None
