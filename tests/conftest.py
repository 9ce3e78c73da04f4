"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from myoguide.bootstrap import Service, default_service

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def service() -> Service:
    return default_service()
