"""Real chart sizes through a real CDS server on loopback with signed calls (issue 17, item 7).

A 1,000-order Synthea-shaped chart as prefetch, a body past the CDS limit, weights paged by a
FHIR server past ten pages, and the total cap on what one call reads.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlparse

import httpx
import orjson
import pytest
from helpers import check_cards, hook_request, load_bundle, prefetch_from
from servers import Server, start_server, stop_server

from myoguide.adapters.fhir.gather import FhirGatherer, ReadCaps, prefetch_templates
from myoguide.adapters.http.headers import duplicate_key, duplicate_key_of
from myoguide.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fhir"))
import synthea_shapes  # tests/fhir: the big-chart generator the chart tests use

PV = "/cds-services/myoguide-patient-view"
CDS_LIMIT = 3_000_000  # this module's servers: past a 1.6 MB chart, and cheap to exceed


def _searchset(resources: list[dict[str, Any]], next_url: str | None = None) -> dict[str, Any]:
    page: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r} for r in resources],
    }
    if next_url:
        page["link"] = [{"relation": "next", "url": next_url}]
    return page


class _Fhir(BaseHTTPRequestHandler):
    """A FHIR server paging searches `per_page` entries at a time, with `?page=N` links."""

    searches: ClassVar[dict[str, list[dict[str, Any]]]] = {}
    per_page: ClassVar[int] = 1
    asked: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        url = urlparse(self.path)
        kind = url.path.rstrip("/").rsplit("/", 1)[-1]
        _Fhir.asked.append(kind)
        found = _Fhir.searches.get(kind)
        if found is None:
            self.send_response(404)
            self.end_headers()
            return
        page = int(parse_qs(url.query).get("page", ["0"])[0])
        n = _Fhir.per_page
        more = (page + 1) * n < len(found)
        base = f"http://127.0.0.1:{self.server.server_address[1]}/fhir/{kind}"
        body = _searchset(
            found[page * n : (page + 1) * n], f"{base}?page={page + 1}" if more else None
        )
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def fhir_url() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Fhir)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/fhir"
    httpd.shutdown()


def _serve(tmp: Path, fhir_url: str, **env: str) -> Server:
    trusted = [{"url": fhir_url, "allow_http": True, "allow_private": True}]
    return start_server(
        tmp,
        fhir_servers=trusted,
        env={"MYOGUIDE_CDS_MAX_BODY_BYTES": str(CDS_LIMIT), **env},
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, fhir_url: str) -> Iterator[Server]:
    srv = _serve(tmp_path_factory.mktemp("big"), fhir_url)
    yield srv
    stop_server(srv)


def _texts(cards: list[dict[str, Any]]) -> str:
    return " ".join(f"{c['summary']} {c.get('detail', '')}" for c in cards)


def test_the_default_cds_limit_is_sized_for_real_charts() -> None:
    assert Settings().cds_max_body_bytes >= 16 * 1024 * 1024
    assert Settings().fhir_max_entries >= 20_000


def test_a_thousand_order_chart_answers_with_cards(server: Server) -> None:
    patient_id, prefetch = prefetch_from(synthea_shapes.big_chart(1000))
    assert len(prefetch["medicationRequests"]["entry"]) >= 950
    body = json.dumps(hook_request("patient-view", patient_id, prefetch)).encode()
    assert len(body) > 1_000_000
    res = server.post(PV, body)
    assert res.status_code == 200, res.text
    cards = check_cards(res.json())
    assert cards
    # Prednisone 20 mg/day now, methotrexate failed: the chart was read, not refused.
    assert "pages" not in _texts(cards)


def test_a_body_past_the_cds_limit_is_413_naming_it(server: Server) -> None:
    patient_id, prefetch = prefetch_from(synthea_shapes.big_chart(1000))
    body = hook_request("patient-view", patient_id, prefetch)
    body["context"]["padding"] = "x" * CDS_LIMIT
    res = server.post(PV, body)
    assert res.status_code == 413
    problem = res.json()
    assert problem["limit"] == CDS_LIMIT
    assert f"{CDS_LIMIT:,} bytes" in problem["detail"]
    # Sent without a declared length, the cap holds while the body streams in.
    data = json.dumps(body).encode()

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(data), 65_536):
            yield data[i : i + 65_536]

    res = httpx.post(
        server.base + PV,
        content=chunks(),
        headers={"Authorization": f"Bearer {server.token(PV)}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert res.status_code == 413
    assert res.json()["limit"] == CDS_LIMIT


def _weights(n: int, *, newest_first: bool, newest_without_value: bool = False) -> list[Any]:
    found = [
        synthea_shapes.weight(
            70 + k, f"2026-{1 + k % 12:02d}-0{1 + k // 12}T09:00:00Z", seed=f"w{k}"
        )
        for k in range(n)
    ]
    found.sort(key=lambda w: w["effectiveDateTime"], reverse=newest_first)
    if newest_without_value:
        del found[0 if newest_first else -1]["valueQuantity"]
    return found


def _fetched_weight_call(fhir_url: str) -> bytes:
    patient_id, prefetch = prefetch_from(load_bundle("resistant-dm")["bundle"])
    del prefetch["weight"]  # fetched from the FHIR server, page by page
    body = hook_request("patient-view", patient_id, prefetch)
    body["fhirServer"] = fhir_url
    body["fhirAuthorization"] = {"access_token": "t", "token_type": "Bearer", "expires_in": 300}
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("newest_first", "newest_without_value", "per_page", "pages"),
    [
        # Sort and count honoured: the newest page holds the answer; no older page is fetched,
        # even when the newest entry has no value (the reader takes the next one).
        (True, False, 5, 1),
        (True, True, 5, 1),
        # One a page: the second page shows the order was kept, and reading stops there.
        (True, False, 1, 2),
        # A server that ignores _sort: every page is read (past ten), none of it refused.
        (False, False, 1, 14),
        (False, True, 5, 3),
    ],
)
def test_weights_past_ten_pages_answer_without_a_page_card(
    server: Server,
    fhir_url: str,
    newest_first: bool,
    newest_without_value: bool,
    per_page: int,
    pages: int,
) -> None:
    found = _weights(14, newest_first=newest_first, newest_without_value=newest_without_value)
    _Fhir.searches = {"Observation": found}
    _Fhir.per_page, _Fhir.asked = per_page, []
    res = server.post(PV, _fetched_weight_call(fhir_url))
    assert res.status_code == 200, res.text
    cards = check_cards(res.json())
    assert cards[0]["source"]["topic"]["code"] == "resistant_rituximab"
    assert _Fhir.asked == ["Observation"] * pages
    text = _texts(cards)
    assert "pages" not in text
    assert "body weight could not be read" not in text


def test_the_total_cap_is_said_in_a_clinicians_words(tmp_path: Path, fhir_url: str) -> None:
    chart = synthea_shapes.big_chart(1000)
    patient_id, prefetch = prefetch_from(chart)
    orders = [e["resource"] for e in prefetch.pop("medicationRequests")["entry"]]
    _Fhir.searches = {"MedicationRequest": orders}
    _Fhir.per_page, _Fhir.asked = 200, []
    body = hook_request("patient-view", patient_id, prefetch)
    body["fhirServer"] = fhir_url
    srv = _serve(tmp_path, fhir_url, MYOGUIDE_FHIR_MAX_ENTRIES="500")
    try:
        res = srv.post(PV, body)
    finally:
        stop_server(srv)
    assert res.status_code == 200, res.text
    cards = check_cards(res.json())
    # 200 a page: the third page passes 500 entries, and nothing more is fetched.
    assert _Fhir.asked == ["MedicationRequest"] * 3
    quality = cards[-1]
    assert quality["source"]["topic"]["code"] == "data-quality"
    assert (
        "the chart is larger than this service reads in one request (at most 500 entries and "
        "32 MB in all); medication orders could not be read in full"
    ) in quality["detail"]


def test_prefetch_asks_only_for_what_is_read() -> None:
    templates = prefetch_templates({"29463-7"}, {"8302-2"})
    orders = templates["medicationRequests"]
    assert "status=active,on-hold,completed,stopped,unknown" in orders
    assert "_sort=-authoredon" in orders
    for word in ("draft", "cancelled", "entered-in-error"):
        assert word not in orders
    assert "status=final,amended,corrected&_sort=-date&_count=5" in templates["weight"]


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (b'{"a": {"b": 1, "c": 2}, "d": [{"e": 1}]}', None),
        (b'{"a": {"b": 1, "b": 2}}', "b"),
        (b'{"a" :\n 1, "x": [{"y": 1, "y": 1}]}', "y"),
        (b'{"a\\"": 1, "a\\"": 2}', 'a"'),
        (b'{"a\\u0022": 1, "q": "say \\"x\\": y"}', None),
        (b'{"q": "a \\":", "q": 1}', "q"),
        (b'{"s": "\\"b\\":", "t": 1}', None),
        (b'{"t": "09:00", "a": 1, "a": "\\u003a"}', "a"),
        (b'{"t": "\\u003a", "u": 1}', None),
        # An escaped colon can balance the colon a dropped pair takes: the exact check runs.
        (b'{"a": 1, "a": 2, "t": "\\u003A"}', "a"),
        # Other escapes change no colon: the count alone decides.
        (b'{"n": "Jos\\u00e9", "t": "09:00"}', None),
        (b'{"n": "Jos\\u00e9", "n": "Ren\\u00e9e", "t": "09:00"}', "n"),
    ],
)
def test_repeated_keys_are_found_by_the_fast_count_as_by_the_exact_check(
    text: bytes, key: str | None
) -> None:
    assert duplicate_key_of(text, orjson.loads(text)) == key == duplicate_key(text)


class _PagedClient:
    """The FhirClient port over the paged searches above, in process (for the byte cap)."""

    def __init__(self, orders: list[dict[str, Any]], per_page: int) -> None:
        self.orders, self.per_page, self.asked = orders, per_page, 0

    def read(self, base_url: str, query: str, access_token: str | None) -> dict[str, Any]:
        self.asked += 1
        page = int(query.split("page=")[1]) if "page=" in query else 0
        n = self.per_page
        more = (page + 1) * n < len(self.orders)
        nxt = f"{base_url}/MedicationRequest?page={page + 1}" if more else None
        return _searchset(self.orders[page * n : (page + 1) * n], nxt)


def test_the_byte_cap_stops_fetching_and_says_so() -> None:
    patient_id, prefetch = prefetch_from(synthea_shapes.big_chart(1000))
    orders = [e["resource"] for e in prefetch.pop("medicationRequests")["entry"]]
    client = _PagedClient(orders, 100)
    templates = prefetch_templates({"29463-7"}, {"8302-2"})
    call = hook_request("patient-view", patient_id, prefetch)
    call["fhirServer"] = "https://ehr.example/fhir"
    page_bytes = len(orjson.dumps(client.read("x", "", None)))
    client.asked = 0
    caps = ReadCaps(bytes=3 * page_bytes)
    gathered = FhirGatherer(client, templates, caps).gather(call)
    assert client.asked == 3  # the third page reaches the cap; no fourth is fetched
    assert [u.words for u in gathered.unread] == ["medication orders"]
    assert any(
        code == "chart_too_large"
        and "larger than this service reads" in text
        and "medication orders could not be read in full" in text
        for code, text in gathered.notes
    )
    # Within the caps the whole chart is read, ten pages and more.
    client.asked = 0
    gathered = FhirGatherer(client, templates).gather(call)
    assert client.asked == 10
    assert not gathered.unread
