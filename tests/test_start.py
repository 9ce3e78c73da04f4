"""The command's start (issue 24): the knowledge cache, what `recommend` imports, the Python API."""

from __future__ import annotations

import datetime as dt
import gc
import io
import json
import os
import pickle
import subprocess
import sys
import threading
from pathlib import Path

import msgspec
import pytest

import myoguide
from clirun import ROOT
from myoguide.adapters.jsonio import dumps
from myoguide.bootstrap import default_service
from myoguide.errors import InputError, KnowledgeError
from myoguide.knowledge.cache import MAGIC, cached, cached_payload, read_packaged
from myoguide.knowledge.loader import PACKAGED_FILE, load_packaged, parse_knowledge
from myoguide.knowledge.model import Knowledge
from myoguide.knowledge.terminology import Terminology, load_packaged_terminology

GUIDELINE = (ROOT / "src" / "myoguide" / "knowledge" / "data" / PACKAGED_FILE).read_bytes()
BUNDLE_CASE = json.loads((ROOT / "tests" / "fhir" / "bundles" / "resistant-dm.json").read_text())
STATE_FILE = ROOT / "examples" / "resistant-dm.json"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"


class Parses:
    """The real parse of guideline bytes, counting how often it runs."""

    def __init__(self, data: bytes) -> None:
        self.data, self.calls = data, 0

    def __call__(self) -> Knowledge:
        self.calls += 1
        return parse_knowledge(self.data.decode(), origin="guideline.yaml")


def _load(data: bytes, folder: Path | None) -> tuple[Knowledge, int]:
    parse = Parses(data)
    return cached("guideline", data, Knowledge, parse, folder), parse.calls


def test_a_cached_knowledge_is_the_parsed_one_and_skips_the_parse(tmp_path: Path) -> None:
    first, calls = _load(GUIDELINE, tmp_path)
    assert calls == 1
    assert (tmp_path / "guideline.msgpack").exists()
    again, calls = _load(GUIDELINE, tmp_path)
    assert calls == 0
    assert again == first == parse_knowledge(GUIDELINE.decode(), origin="guideline.yaml")


def test_the_cache_is_rebuilt_when_the_knowledge_bytes_change(tmp_path: Path) -> None:
    old, _ = _load(GUIDELINE, tmp_path)
    changed = GUIDELINE.replace(f"title: {old.title}".encode(), b"title: Another title", 1)
    assert changed != GUIDELINE
    new, calls = _load(changed, tmp_path)
    assert calls == 1
    assert new.title == "Another title"
    # The file now holds the new bytes' answer; the old bytes miss it and rebuild in turn.
    assert _load(changed, tmp_path)[1] == 0
    back, calls = _load(GUIDELINE, tmp_path)
    assert calls == 1
    assert back == old


def test_invalid_knowledge_is_never_cached(tmp_path: Path) -> None:
    broken = GUIDELINE.replace(b"knowledge_version:", b"knowledge_versio:", 1)
    with pytest.raises(KnowledgeError):
        _load(broken, tmp_path)
    assert not (tmp_path / "guideline.msgpack").exists()


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda b: b[:-1] + bytes([b[-1] ^ 1]), id="payload-bit-flipped"),
        pytest.param(lambda b: b[: len(b) // 2], id="truncated"),
        pytest.param(lambda b: b"not a cache at all", id="garbage"),
        pytest.param(lambda b: b"", id="empty"),
        # Another key in the header: a stale or foreign file, whatever its payload says.
        pytest.param(lambda b: MAGIC + bytes(32) + b[len(MAGIC) + 32 :], id="other-key"),
    ],
)
def test_a_corrupt_cache_is_ignored_and_rewritten(tmp_path: Path, damage: object) -> None:
    good, _ = _load(GUIDELINE, tmp_path)
    path = tmp_path / "guideline.msgpack"
    path.write_bytes(damage(path.read_bytes()))  # type: ignore[operator]
    again, calls = _load(GUIDELINE, tmp_path)
    assert calls == 1
    assert again == good
    assert _load(GUIDELINE, tmp_path)[1] == 0  # rewritten whole


def test_a_cache_others_can_write_is_not_trusted(tmp_path: Path) -> None:
    good, _ = _load(GUIDELINE, tmp_path)
    path = tmp_path / "guideline.msgpack"
    path.chmod(0o664)  # intact, but a group member could have rewritten it with a valid key
    again, calls = _load(GUIDELINE, tmp_path)
    assert calls == 1
    assert again == good
    assert _load(GUIDELINE, tmp_path)[1] == 0  # replaced by a private file
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    assert _load(GUIDELINE, shared)[1] == 1
    assert not (shared / "guideline.msgpack").exists()


def test_an_unwritable_cache_falls_back_to_parsing(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    value, calls = _load(GUIDELINE, blocker / "cache")  # cannot make a folder under a file
    assert calls == 1
    assert value.knowledge_version
    assert _load(GUIDELINE, None)[1] == 1  # no folder: always parsed


def test_packaged_knowledge_and_terminology_from_the_cache_match_the_files(tmp_path: Path) -> None:
    assert load_packaged(tmp_path) == load_packaged(tmp_path) == load_packaged()
    cached_term = load_packaged_terminology(tmp_path)
    parsed = load_packaged_terminology()
    assert cached_term.file == parsed.file
    assert cached_term.by_code == parsed.by_code
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "guideline.msgpack",
        "terminology.msgpack",
    ]


def _slots(t: Terminology) -> dict[str, object]:
    # The name cache fills as names are looked up (by other tests too): not part of the table.
    skip = ("_pending", "name_cache")
    return {name: getattr(t, name) for name in Terminology.__slots__ if name not in skip}


def test_a_terminology_read_from_the_cache_builds_the_rest_when_first_read(tmp_path: Path) -> None:
    parsed = load_packaged_terminology()
    load_packaged_terminology(tmp_path / "a")  # writes the cache
    data = read_packaged("terminology.yaml")
    payload = cached_payload("terminology", data, tmp_path / "a")
    assert payload is not None
    # The engine's part (version, product codes) at once; the rest decoded on first read.
    lazy = Terminology.from_cache(payload, data, parsed.origin)
    assert (lazy.version, lazy.by_code) == (parsed.version, parsed.by_code)
    assert lazy.diagnosis(ICD10CM, "M33.11") == parsed.diagnosis(ICD10CM, "M33.11")
    assert _slots(lazy) == _slots(parsed)
    # Copied and pickled before anything else is read: the same table.
    assert _slots(pickle.loads(pickle.dumps(Terminology.from_cache(payload, data, "x")))) == {
        **_slots(parsed),
        "origin": "x",
    }
    kb = load_packaged()
    fresh = Terminology.from_cache(payload, data, parsed.origin)
    assert _slots(fresh.with_guideline(kb)) == _slots(parsed.with_guideline(kb))
    # A payload whose rest cannot be decoded: the source bytes are parsed instead.
    head = msgspec.msgpack.encode({"terminology_version": parsed.version, "agents": []})
    broken = Terminology.from_cache(head, data, parsed.origin)
    assert broken.file == parsed.file


def test_a_cached_terminology_read_by_many_threads_at_once_is_whole_for_each(
    tmp_path: Path,
) -> None:
    parsed = load_packaged_terminology()
    load_packaged_terminology(tmp_path)  # writes the cache
    data = read_packaged("terminology.yaml")
    payload = cached_payload("terminology", data, tmp_path)
    assert payload is not None
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads change hands as often as they can
    try:
        for _ in range(20):
            lazy = Terminology.from_cache(payload, data, parsed.origin)
            seen: list[tuple[int, int, int]] = []

            def read(t: Terminology, out: list[tuple[int, int, int]]) -> None:
                out.append((len(t.units), len(t.names), len(t.body_codes)))

            threads = [threading.Thread(target=read, args=(lazy, seen)) for _ in range(4)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            whole = (len(parsed.units), len(parsed.names), len(parsed.body_codes))
            assert seen == [whole] * 4
            # Pickled once built: nothing left pending.
            assert pickle.loads(pickle.dumps(lazy))._pending is None
    finally:
        sys.setswitchinterval(switch)


# ---- what one `myoguide recommend` process loads -------------------------------------------

_CHILD = """
import gc, io, json, sys
from myoguide.entrypoints.cli import main
sys.argv = ["myoguide", "recommend", sys.argv[1], "--format", "json"]
out = io.StringIO()
code = main(out=out)
print(json.dumps({"code": code, "gc": gc.isenabled(), "modules": sorted(sys.modules)}))
"""

# The web stack, the store, the JWT and JSON Schema libraries, the other use cases.
NOT_FOR_RECOMMEND = (
    "fastapi",
    "starlette",
    "uvicorn",
    "sqlalchemy",
    "httpx",
    "jsonschema",
    "pydantic",
    "secrets",
    "hmac",
    "myoguide.service.cds",
    "myoguide.service.audit",
    "myoguide.service.records",
    "myoguide.adapters.fhir",
    "myoguide.settings",
    # Issue 24: a plain `recommend` parses its arguments without argparse, reads files without
    # pathlib, and needs the service ports for annotations only.
    "argparse",
    "pathlib",
    "myoguide.service.ports",
    # The input is read with msgspec (already loaded); orjson would bring json and dataclasses.
    "orjson",
    "dataclasses",
)


def _child(path: Path, cache: Path) -> dict[str, object]:
    env = {**os.environ, "MYOGUIDE_CACHE_DIR": str(cache)}
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=120,
    )
    result: dict[str, object] = json.loads(proc.stdout)
    return result


def test_recommend_imports_only_what_it_uses(tmp_path: Path) -> None:
    first = _child(STATE_FILE, tmp_path)  # builds the cache
    assert first["code"] == 0
    child = _child(STATE_FILE, tmp_path)
    modules = child["modules"]
    assert isinstance(modules, list)
    for name in NOT_FOR_RECOMMEND:
        assert not [m for m in modules if m == name or m.startswith(name + ".")], name
    # From a warm cache the YAML parser is not even loaded.
    assert "yaml" not in modules
    assert "myoguide.knowledge.cache" in modules


def test_a_bundle_reads_the_cached_terminology_and_no_web_stack(tmp_path: Path) -> None:
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(BUNDLE_CASE["bundle"]))
    _child(STATE_FILE, tmp_path / "cache")  # builds the cache
    child = _child(path, tmp_path / "cache")
    assert child["code"] == 0
    modules = child["modules"]
    assert isinstance(modules, list)
    assert "myoguide.adapters.fhir.mapping" in modules
    fhir_too = ("myoguide.adapters.fhir", "orjson", "dataclasses")  # the FHIR mapping's own
    for name in [n for n in NOT_FOR_RECOMMEND if n not in fhir_too] + ["yaml"]:
        assert not [m for m in modules if m == name or m.startswith(name + ".")], name


def test_the_one_shot_process_runs_without_garbage_collection(tmp_path: Path) -> None:
    assert _child(STATE_FILE, tmp_path)["gc"] is False
    # A caller's process (main given its arguments, as tests do) keeps its collector.
    from myoguide.entrypoints.cli import main

    main(["recommend", str(STATE_FILE), "--format", "json"], out=io.StringIO())

    assert gc.isenabled()


# ---- the Python API takes what the command takes ---------------------------------------------


def _cli_json(path: Path, *extra: str) -> object:
    exe = Path(sys.executable).with_name("myoguide")
    proc = subprocess.run(
        [str(exe), "recommend", str(path), "--format", "json", *extra],
        capture_output=True,
        check=True,
        timeout=120,
    )
    return json.loads(proc.stdout)


def test_the_api_answers_a_bundle_as_a_dict_or_as_bytes_like_the_command(tmp_path: Path) -> None:
    bundle = BUNDLE_CASE["bundle"]
    date = dt.date.fromisoformat(BUNDLE_CASE["evaluation_date"])
    as_dict = myoguide.recommend(bundle, evaluation_date=date)
    raw = json.dumps(bundle).encode()
    assert myoguide.recommend(raw, evaluation_date=date) == as_dict
    assert myoguide.recommend(bytearray(raw), evaluation_date=date) == as_dict
    assert myoguide.recommend(memoryview(raw), evaluation_date=date) == as_dict
    assert as_dict == default_service().assess_bundle(bundle, date)
    path = tmp_path / "bundle.json"
    path.write_bytes(raw)
    command = _cli_json(path, "--date", date.isoformat())
    assert json.loads(dumps(as_dict)) == command


def test_the_api_answers_a_state_as_a_dict_or_as_bytes() -> None:
    state = json.loads(STATE_FILE.read_text())["input"]
    as_dict = myoguide.recommend(state)
    assert myoguide.recommend(json.dumps(state).encode()) == as_dict
    assert json.loads(dumps(as_dict)) == _cli_json(STATE_FILE)


def test_the_api_refuses_bytes_that_are_not_json() -> None:
    with pytest.raises(InputError) as err:
        myoguide.recommend(b"{not json")
    assert err.value.field == "(input)"


# Each reads the same in both (numbers, keys, escapes) or fails in both; the long numbers are
# those orjson reads as floats (outside 64 bits) and msgspec as ints.
ODD_JSON = [
    b'{"a": 1, "b": 2, "a": 3}',
    b"[18446744073709551616, -9223372036854775809, 18446744073709551615, 1e5, -0.0]",
    b'["1234567890123456789012", 123456789012345678901234567890.5]',
    b'["\\ud83d\\ude00", "\\u0000", "\\/"]',
    b"[" * 1020 + b"]" * 1020,
    b"[" * 1030 + b"]" * 1030,
    b"[NaN]",
    b"[Infinity]",
    b"[1e400]",
    b'["\\ud800"]',
    b"\xef\xbb\xbf{}",
    b'["\xff"]',
    b'["\xed\xa0\x80"]',
    b"[01]",
    b'{"a": 1,}',
    b"[1] x",
    b"",
    b" ",
    b'{"a": 1',
]


@pytest.mark.parametrize("text", ODD_JSON, ids=range(len(ODD_JSON)))
def test_the_input_reader_reads_and_refuses_as_orjson_does(text: bytes) -> None:
    import orjson

    from myoguide.adapters.jsonio import read_document, read_small

    def outcome(read: object) -> str:
        try:
            value = read(text)  # type: ignore[operator]
        except ValueError as exc:
            return f"{type(exc).__name__}: {exc}"
        # Deep nesting has no repr; its depth tells the values apart.
        depth = 0
        while isinstance(value, list) and value:
            value, depth = value[0], depth + 1
        return f"{depth} {value!r}"

    assert outcome(read_small) == outcome(read_document) == outcome(orjson.loads)


def test_the_one_shot_process_ends_with_its_whole_output_and_status(tmp_path: Path) -> None:
    # It skips Python's teardown (ADR 0041): what it wrote is flushed first, its status kept.
    from myoguide.entrypoints.cli import main

    exe = Path(sys.executable).with_name("myoguide")
    env = {**os.environ, "MYOGUIDE_CACHE_DIR": str(tmp_path / "cache")}
    for fmt in ("json", "text"):
        mine = io.StringIO()
        assert main(["recommend", str(STATE_FILE), "--format", fmt], out=mine) == 0
        proc = subprocess.run(
            [str(exe), "recommend", str(STATE_FILE), "--format", fmt],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert (proc.returncode, proc.stdout, proc.stderr) == (0, mine.getvalue(), "")
    bad = tmp_path / "bad.json"
    bad.write_text('{"age_years": 40,')
    proc = subprocess.run(
        [str(exe), "recommend", str(bad)], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith("myoguide: invalid input: (input): not valid JSON: ")
