"""Issue 22: liveness and readiness apart, and `myoguide --version`."""

from __future__ import annotations

import time
from pathlib import Path

from alembic import command
from fastapi.testclient import TestClient

from clirun import run_cli
from myoguide import __version__
from myoguide.adapters.store import make_engine
from myoguide.adapters.store.db import alembic_config
from myoguide.bootstrap import ServeConfig, build_http_app, default_service


def test_readiness_follows_the_migrations(tmp_path: Path) -> None:
    config = ServeConfig((), False, None, tmp_path)
    kv = default_service().knowledge.knowledge_version
    with TestClient(build_http_app(config)) as client:
        assert client.get("/livez").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["migrations"] == "current"
        assert ready.json()["knowledge"] == kv
        # The database taken back one revision: still alive, no longer ready. (Once the
        # readiness probe's write has ended: SQLite has one writer at a time.)
        time.sleep(1)
        engine = make_engine(f"sqlite:///{tmp_path / 'myoguide.db'}")
        with engine.begin() as conn:
            alembic = alembic_config()
            alembic.attributes["connection"] = conn
            command.downgrade(alembic, "0005")
        engine.dispose()
        assert client.get("/livez").status_code == 200
        late = client.get("/readyz")
        assert late.status_code == 503
        assert late.json()["migrations"] == "not current"


def test_version_names_the_package_and_the_knowledge() -> None:
    res = run_cli("--version")
    assert res.code == 0, res.stderr
    kv = default_service().knowledge.knowledge_version
    assert res.stdout.strip() == f"myoguide {__version__} (knowledge {kv})"


def test_the_served_log_config_keeps_alembic_below_info() -> None:
    """Each /readyz probe opens an Alembic context; its two INFO lines stay out of the log."""
    import subprocess
    import sys

    # In a process of its own: dictConfig would change this process's logging for other tests.
    code = (
        "import logging, logging.config\n"
        "from uvicorn.config import LOGGING_CONFIG\n"
        "from myoguide.adapters.logsafe import uvicorn_log_config\n"
        "logging.config.dictConfig(uvicorn_log_config(LOGGING_CONFIG))\n"
        "probe = logging.getLogger('alembic.runtime.migration')\n"
        "print(probe.isEnabledFor(logging.INFO), probe.isEnabledFor(logging.WARNING))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]
