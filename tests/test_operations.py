"""Issue 22, run by IT: settings from the environment, migrate, --no-migrate, backup, restore.

Each runs the installed `myoguide` command as a real process; servers listen on loopback.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from clirun import ROOT, run_cli_in_process

EXE = str(Path(sys.executable).with_name("myoguide"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(**values: str) -> dict[str, str]:
    """Return this process's environment without any MYOGUIDE_* or DATABASE_URL, plus values."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("MYOGUIDE_") and k != "DATABASE_URL"
    }
    env["MYOGUIDE_CACHE_DIR"] = "off"
    env.update(values)
    return env


def _run(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXE, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


@contextmanager
def _serving(*args: str, env: dict[str, str], cwd: Path, port: int) -> Iterator[str]:
    """Run `myoguide serve` until the block ends; yield its base URL once it answers /livez."""
    proc = subprocess.Popen(
        [EXE, "serve", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"serve ended: {proc.communicate()}")
            try:
                if httpx.get(base + "/livez", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("serve did not answer in 60 s")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_serve_takes_every_option_from_the_environment_and_the_command_line_wins(
    tmp_path: Path,
) -> None:
    env_port, cli_port = _free_port(), _free_port()
    env = _env(
        MYOGUIDE_PORT=str(env_port),
        MYOGUIDE_DATA_DIR=str(tmp_path / "from-env"),
        MYOGUIDE_DEMO="true",
        MYOGUIDE_MAX_BODY="2000",
    )
    with _serving("--port", str(cli_port), env=env, cwd=tmp_path, port=cli_port) as base:
        assert httpx.get(base + "/readyz", timeout=10).status_code == 200
        # Demo patients from MYOGUIDE_DEMO, the store in MYOGUIDE_DATA_DIR.
        assert "DEMO-A (synthetic)" in httpx.get(base + "/patients", timeout=10).text
        assert (tmp_path / "from-env" / "myoguide.db").is_file()
        assert not (tmp_path / "data").exists()
        # MYOGUIDE_MAX_BODY: a body over 2,000 bytes is refused.
        big = httpx.post(base + "/api/recommendations", content=b"{" + b" " * 3000 + b"}")
        assert big.status_code == 413, big.text
        # The command line's --port won over MYOGUIDE_PORT.
        try:
            httpx.get(f"http://127.0.0.1:{env_port}/livez", timeout=2)
            raise AssertionError("MYOGUIDE_PORT won over --port")
        except httpx.TransportError:
            pass


def test_bad_settings_exit_2_naming_the_variable_or_the_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One as a real process; the rest through the same door in this process (each is refused
    # before anything is built or bound).
    res = _run("serve", env=_env(MYOGUIDE_PORT="eighty"), cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "invalid input: MYOGUIDE_PORT:" in res.stderr
    assert "Traceback" not in res.stderr
    cases: list[tuple[dict[str, str], tuple[str, ...], str]] = [
        ({"MYOGUIDE_PORT": "8000"}, ("--port", "70000"), "--port"),
        ({"MYOGUIDE_WORKERS": "0"}, (), "MYOGUIDE_WORKERS"),
        ({"MYOGUIDE_WORKERS": "2"}, ("--workers", "0"), "--workers"),
        ({"MYOGUIDE_DEMO": "maybe"}, (), "MYOGUIDE_DEMO"),
        ({"MYOGUIDE_MIGRATE": "perhaps"}, (), "MYOGUIDE_MIGRATE"),
        ({"MYOGUIDE_MAX_BODY": "-1"}, (), "MYOGUIDE_MAX_BODY"),
        ({"MYOGUIDE_HOST": ""}, ("--host", ""), "--host"),
        ({"MYOGUIDE_SESSION_IDLE_MINUTES": "0"}, (), "MYOGUIDE_SESSION_IDLE_MINUTES"),
        ({"MYOGUIDE_LOG_FORMAT": "xml"}, (), "MYOGUIDE_LOG_FORMAT"),
    ]
    for values, args, named in cases:
        with monkeypatch.context() as m:
            for k, v in values.items():
                m.setenv(k, v)
            res_in = run_cli_in_process("serve", *args)
        assert res_in.code == 2, (values, args, res_in.stderr)
        assert f"invalid input: {named}:" in res_in.stderr, res_in.stderr
    # The store commands read the data folder from the environment too.
    res = _run("migrate", env=_env(MYOGUIDE_DATA_DIR=str(tmp_path / "d")), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "d" / "myoguide.db").is_file()


def test_no_migrate_serves_not_ready_until_migrate_runs(tmp_path: Path) -> None:
    port = _free_port()
    env = _env(MYOGUIDE_DATA_DIR=str(tmp_path / "data"), MYOGUIDE_PORT=str(port))
    with _serving("--no-migrate", env=env, cwd=tmp_path, port=port) as base:
        ready = httpx.get(base + "/readyz", timeout=10)
        assert ready.status_code == 503, ready.text
        assert ready.json()["migrations"] == "not current"
        res = _run("migrate", env=env, cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        assert "migrated from revision none to" in res.stdout
        # The store's write probe is re-run every 2 s (api.py), so readiness follows within that.
        deadline = time.monotonic() + 15
        while (ready := httpx.get(base + "/readyz", timeout=10)).status_code != 200:
            assert time.monotonic() < deadline, ready.text
            time.sleep(0.5)
        assert ready.json()["migrations"] == "current"
    again = _run("migrate", env=env, cwd=tmp_path)
    assert again.returncode == 0
    assert "(current)" in again.stdout


def _exports(data_dir: Path) -> dict[str, Any]:
    """Return every patient's export (visits, answers, decisions) by label, read from the store."""
    from myoguide.adapters.clock import SystemClock
    from myoguide.bootstrap import ServeConfig, record_stores
    from myoguide.service import PatientRecords

    records, _ = record_stores(ServeConfig((), False, None, data_dir))
    patients = PatientRecords(records, SystemClock())
    return {p.label: patients.export(p.id) for p in patients.patients()}


def _seed(data_dir: Path) -> None:
    """Fill a store with the demo patients: visits, answers and decisions on the chains."""
    from myoguide.adapters.clock import SystemClock
    from myoguide.adapters.web.demo import seed_demo
    from myoguide.bootstrap import ServeConfig, default_service, record_stores
    from myoguide.service import PatientRecords

    records, _ = record_stores(ServeConfig((), False, None, data_dir))
    assert seed_demo(default_service(), PatientRecords(records, SystemClock())) > 0


def test_backup_then_restore_gives_back_every_visit_and_a_record_that_verifies(
    tmp_path: Path,
) -> None:
    live, restored = tmp_path / "live", tmp_path / "restored"
    _seed(live)
    before = _exports(live)
    assert sum(len(e["visits"]) for e in before.values()) >= 3
    res = _run("backup", str(tmp_path / "bak"), env=_env(MYOGUIDE_DATA_DIR=str(live)), cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in (tmp_path / "bak").iterdir()) == [
        "chain_head.json",
        "myoguide.db",
    ]
    assert (tmp_path / "bak" / "myoguide.db").stat().st_mode & 0o077 == 0
    # A backup folder that holds something already is refused, naming PATH.
    again = _run("backup", str(tmp_path / "bak"), env=_env(MYOGUIDE_DATA_DIR=str(live)), cwd=ROOT)
    assert again.returncode == 2
    assert "invalid input: PATH:" in again.stderr

    # The machine is lost; the operator restores on a new one with the key kept apart.
    restored.mkdir(mode=0o700)
    shutil.copy2(live / "chain_key", restored / "chain_key")
    env = _env(MYOGUIDE_DATA_DIR=str(restored))
    res = _run("restore", str(tmp_path / "bak"), env=env, cwd=ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    verify = _run("record", "verify", env=env, cwd=ROOT)
    assert verify.returncode == 0, verify.stdout
    assert "the heads kept outside the database match" in verify.stdout
    assert _exports(restored) == before

    # Restoring over a store that holds data needs --force.
    over = _run("restore", str(tmp_path / "bak"), env=env, cwd=ROOT)
    assert over.returncode == 2
    assert "invalid input: --force:" in over.stderr
    assert _run("restore", str(tmp_path / "bak"), "--force", env=env, cwd=ROOT).returncode == 0


def test_a_restore_without_the_chain_key_does_not_verify(tmp_path: Path) -> None:
    live = tmp_path / "live"
    _seed(live)
    env = _env(MYOGUIDE_DATA_DIR=str(live))
    assert _run("backup", str(tmp_path / "bak"), env=env, cwd=ROOT).returncode == 0
    # A new data folder makes a new chain key: the restored record's seals cannot hold.
    fresh = _env(MYOGUIDE_DATA_DIR=str(tmp_path / "new"))
    res = _run("restore", str(tmp_path / "bak"), env=fresh, cwd=ROOT)
    assert res.returncode == 4, res.stdout + res.stderr
    assert "BROKEN" in res.stdout


def test_backup_of_postgresql_names_the_pg_dump_route(tmp_path: Path) -> None:
    env = _env(MYOGUIDE_DATABASE_URL="postgresql://myoguide@127.0.0.1:1/myoguide")
    for args in (("backup", str(tmp_path / "b")), ("restore", str(tmp_path / "b"))):
        res = _run(*args, env=env, cwd=tmp_path)
        assert res.returncode == 2, res.stderr
        assert "pg_dump" in res.stderr
        assert "docs/operations.md" in res.stderr


def test_the_configuration_page_is_generated_from_the_settings() -> None:
    res = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "configuration_doc.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stderr


def test_every_serve_option_is_a_setting_with_its_variable() -> None:
    import argparse

    from myoguide.entrypoints.cli import build_parser
    from myoguide.settings import Settings

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    serve = sub.choices["serve"]
    flags = {
        a.dest: a.option_strings[0] for a in serve._actions if a.option_strings and a.dest != "help"
    }
    page = (ROOT / "docs" / "configuration.md").read_text()
    for dest, flag in flags.items():
        extra = Settings.model_fields[dest].json_schema_extra
        assert isinstance(extra, dict), dest
        assert flag in str(extra["cli"]), (dest, flag)
        assert f"`{flag}`" in page
