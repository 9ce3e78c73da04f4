"""Fixtures of the HTTP tests: one real server on loopback for the session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from servers import Server, start_server, stop_server


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("server"))
    yield srv
    stop_server(srv)
