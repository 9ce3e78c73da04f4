"""No patient data in any log line of the whole run.

It runs last: in one process by ordering (conftest.py); after the parallel run of `make test`
as a run of its own over the same log folder (Makefile).
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import httpx

from myoguide.adapters.logsafe import RedactingFilter, redact_urls
from myoguide.adapters.web.demo import demo_courses


def _needles() -> list[str]:
    """The demo patients' labels and a few of their state values, as a log would show them."""
    courses = demo_courses(dt.date(2026, 1, 1))
    needles = list(courses) + [label.split(" ")[0] for label in courses]
    needles += ["current_medications", "treatment_history", "'age_years': ", '"age_years":']
    # A fetched FHIR URL names its patient (tests/http/test_logs_no_ids.py makes such fetches).
    needles += ["pid-logcheck-7f3a91", "/fhir/Patient/", "?patient=p"]
    return needles


def test_the_filter_strips_exception_messages(caplog: object) -> None:
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "save failed", None, None)
    try:
        raise ValueError("DEMO-A (synthetic): DM, flare on taper {'age_years': 54}")
    except ValueError as exc:
        record.exc_info = (type(exc), exc, exc.__traceback__)
    RedactingFilter().filter(record)
    text = logging.Formatter().format(record)
    assert "ValueError" in text
    assert "DEMO-A" not in text
    assert "age_years" not in text


def test_the_filter_hides_chart_tokens_in_access_and_error_lines() -> None:
    from uvicorn.logging import AccessFormatter

    token = "Zm9vYmFyYmF6cXV4cXV1eHp6eXl4eHd3dnZ1dXR0c3M"
    access = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/assess?chart={token}&x=1", "1.1", 200),
        None,
    )
    RedactingFilter().filter(access)
    line = AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s').format(access)
    assert "/assess?chart=[redacted]&x=1" in line
    error = logging.LogRecord(
        "x",
        logging.ERROR,
        __file__,
        1,
        f"failed: /login?next=/assess%3Fchart%3D{token}",
        None,
        None,
    )
    try:
        raise ValueError(token)
    except ValueError as exc:
        error.exc_info = (type(exc), exc, exc.__traceback__)
    RedactingFilter().filter(error)
    text = logging.Formatter().format(error)
    assert "chart%3D[redacted]" in text
    assert token not in line + text


def test_the_filter_hides_patient_ids_in_fhir_urls() -> None:
    record = logging.LogRecord(
        "httpx",
        logging.WARNING,
        __file__,
        1,
        'HTTP Request: %s %s "%s"',
        ("GET", httpx.URL("https://ehr.test/fhir/Condition?patient=abc-42&x=1"), "HTTP/1.1"),
        None,
    )
    RedactingFilter().filter(record)
    line = record.getMessage()
    assert "patient=[redacted]&x=1" in line
    assert "abc-42" not in line
    assert redact_urls("GET /fhir/Patient/abc-42 200") == "GET /fhir/Patient/[redacted] 200"


def test_no_patient_data_in_the_logs_of_the_suite() -> None:
    import os

    folder = Path(os.environ["MYOGUIDE_TEST_LOG_DIR"])
    logs = {p.name: p.read_text(errors="replace") for p in folder.glob("*.log")}
    assert logs, "no logs were kept"
    found = [(name, n) for name, text in logs.items() for n in _needles() if n in text]
    assert found == [], f"patient data in the logs: {found}"
