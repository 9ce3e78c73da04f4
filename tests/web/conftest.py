"""Browser-test fixtures: real `myoguide serve` processes and a real (Debian) Chromium.

Chromium is the system one at /usr/bin/chromium, put there by scripts/chromium.sh if missing;
Playwright only drives it (no `playwright install`). Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from pagechecks import IDS, WIDTHS
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from myoguide.bootstrap import ServeConfig, build_http_app

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_SCRIPT = ROOT / "scripts" / "chromium.sh"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Installing Chromium from the Debian archive on a clean machine can take minutes.
INSTALL_TIMEOUT_S = 900
START_TIMEOUT_S = 30


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def myoguide_exe() -> str:
    """Return the `myoguide` console script of the running interpreter's environment."""
    return str(Path(sys.executable).with_name("myoguide"))


@dataclass
class Server:
    """One running `myoguide serve` process, reached on 127.0.0.1."""

    base: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log: Path
    args: list[str] = field(default_factory=list)

    def output(self) -> str:
        """Return what the server wrote to stdout and stderr so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        """Stop the server gently (SIGTERM), or kill it if it does not exit."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)

    def kill(self) -> None:
        """SIGKILL the server: no shutdown code of its own runs."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=15)


def start_server(data_dir: Path, *extra: str, host: str = "127.0.0.1") -> Server:
    """Start `myoguide serve` on a free port with `data_dir`, and wait until it answers."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = [
        myoguide_exe(),
        "serve",
        "--host",
        host,
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        *extra,
    ]
    log = data_dir / f"server-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    server = Server(base, data_dir, proc, log, args)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}): {server.output()}")
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.kill()
    raise RuntimeError(f"server did not answer within {START_TIMEOUT_S}s: {server.output()}")


ServerFactory = Callable[..., Server]


@pytest.fixture
def launch() -> Iterator[ServerFactory]:
    """Return `launch(data_dir, *args, host=...)`: start a server, stopped after the test."""
    started: list[Server] = []

    def _launch(data_dir: Path, *extra: str, host: str = "127.0.0.1") -> Server:
        server = start_server(data_dir, *extra, host=host)
        started.append(server)
        return server

    yield _launch
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server on loopback (no sign-in) with the synthetic demo patients."""
    srv = start_server(tmp_path_factory.mktemp("web") / "data", "--demo")
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """The folder screenshots and PDFs are written to (git-ignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def _ensure_chromium() -> None:
    try:
        proc = subprocess.run(
            ["bash", str(CHROMIUM_SCRIPT)],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(
            f"{CHROMIUM_SCRIPT} did not finish within {INSTALL_TIMEOUT_S}s; "
            f"install Chromium so that {CHROMIUM} exists (Debian: apt-get install chromium).",
            pytrace=False,
        )
    if proc.returncode != 0:
        pytest.fail(
            f"Chromium is needed for the browser tests and {CHROMIUM_SCRIPT} could not provide "
            f"it (exit {proc.returncode}).\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}\n"
            f"Install it (Debian: apt-get install chromium) so that {CHROMIUM} exists.",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright; the test run fails if it cannot start."""
    _ensure_chromium()
    try:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, timeout=60_000
        )
    except Exception as exc:
        pytest.fail(
            f"Chromium at {CHROMIUM} could not be started by Playwright: {exc}\n"
            f"Check that `{CHROMIUM} --headless --no-sandbox --version` runs.",
            pytrace=False,
        )
    yield chromium
    chromium.close()


@pytest.fixture
def context(browser: Browser, server: Server) -> Iterator[BrowserContext]:
    """A fresh browser profile (own cookies) aimed at the demo server, laptop-sized."""
    ctx = browser.new_context(
        base_url=server.base, viewport={"width": 1366, "height": 768}, locale="en-US"
    )
    ctx.set_default_timeout(15_000)
    yield ctx
    ctx.close()


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    """The app in process on a fresh store, no sign-in (loopback), for tests of rendered pages."""
    config = ServeConfig((), False, None, tmp_path, require_login=False)
    with TestClient(build_http_app(config), follow_redirects=False) as c:
        yield c


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.fixture(params=WIDTHS, ids=IDS)
def tab(request: pytest.FixtureRequest, browser: Browser, server: Server) -> Iterator[Page]:
    """A page on the demo server at each width a clinician uses (laptop, tablet, phone)."""
    width, height = request.param
    ctx = browser.new_context(
        base_url=server.base, viewport={"width": width, "height": height}, locale="en-US"
    )
    ctx.set_default_timeout(15_000)
    yield ctx.new_page()
    ctx.close()


AXE_SCRIPT = ROOT / "scripts" / "axe.sh"
AXE_JS = ROOT / "tests" / "web" / "axe" / "node_modules" / "axe-core" / "axe.min.js"


@pytest.fixture(scope="session")
def axe_source() -> str:
    """axe-core's source, installed from the npm registry by scripts/axe.sh (pinned in its lock)."""
    proc = subprocess.run(
        ["bash", str(AXE_SCRIPT)], capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S
    )
    if proc.returncode != 0 or not AXE_JS.exists():
        pytest.fail(
            f"axe-core is needed for the browser tests and {AXE_SCRIPT} could not install it "
            f"(exit {proc.returncode}).\nstderr:\n{proc.stderr}",
            pytrace=False,
        )
    return AXE_JS.read_text()
