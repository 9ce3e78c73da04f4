"""Issue 22: the wheel alone runs `myoguide serve --demo` from a fresh environment.

The wheel is built from the checkout and installed into a new virtual environment in a
temporary folder; the server runs there, outside the checkout. The package, its data
(knowledge, templates, static files, migrations) and the `myoguide` command come from the
wheel only. Its dependencies are installed from the wheel's own metadata, held to the
versions of uv.lock by a constraints file exported from it (as docs/operations.md tells an
administrator to install); uv takes them from its cache, which `make setup` filled.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from clirun import ROOT

pytestmark = pytest.mark.slow


def _uv() -> list[str]:
    found = shutil.which("uv")
    return [found] if found else [sys.executable, "-m", "uv"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _check(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    res = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, f"{args}: {res.stdout}\n{res.stderr}"
    return res.stdout


def test_the_wheel_serves_the_demo_from_a_fresh_environment(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MYOGUIDE_", "VIRTUAL_ENV", "PYTHON", "UV_PROJECT"))
        and k != "DATABASE_URL"
    }
    env.update(UV_PYTHON_DOWNLOADS="never", UV_LINK_MODE="copy")
    dist, venv = tmp_path / "dist", tmp_path / "venv"
    _check([*_uv(), "build", "--wheel", "--offline", "--out-dir", str(dist)], ROOT, env)
    (wheel,) = dist.glob("myoguide-*.whl")
    _check([*_uv(), "venv", "--quiet", "--python", sys.executable, str(venv)], tmp_path, env)
    python = venv / "bin" / "python"
    constraints = tmp_path / "constraints.txt"
    constraints.write_text(
        _check(
            [*_uv(), "export", "--frozen", "--no-hashes", "--no-emit-project", "--no-dev", "-q"],
            ROOT,
            env,
        )
    )
    _check(
        [*_uv(), "pip", "install", "-q", "-p", str(python), "-c", str(constraints), str(wheel)],
        tmp_path,
        env,
    )

    where = _check([str(python), "-c", "import myoguide; print(myoguide.__file__)"], tmp_path, env)
    assert Path(where.strip()).is_relative_to(venv), where
    exe = str(venv / "bin" / "myoguide")
    assert _check([exe, "--version"], tmp_path, env).startswith("myoguide ")

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [exe, "serve", "--demo", "--port", str(port), "--data-dir", str(tmp_path / "data")],
        cwd=tmp_path,
        env={**env, "MYOGUIDE_CACHE_DIR": "off"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.communicate()
            try:
                if httpx.get(base + "/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the wheel's server did not get ready in 90 s"
            time.sleep(0.3)
        patients = httpx.get(base + "/patients", timeout=10)
        assert patients.status_code == 200
        assert "DEMO-A (synthetic)" in patients.text
        assert httpx.get(base + "/assess", timeout=10).status_code == 200
        assert "knowledge" in httpx.get(base + "/guideline", timeout=10).text.lower()
        assert httpx.get(base + "/static/form.js", timeout=10).status_code == 200
        assert httpx.get(base + "/openapi.json", timeout=10).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
