"""Empties a test database: every table dropped, Alembic's included."""

from __future__ import annotations

from sqlalchemy import MetaData

from myoguide.adapters.store import make_engine


def reset_database(url: str) -> str:
    """Drop every table so a test starts from an empty database; return the URL."""
    engine = make_engine(url)
    try:
        existing = MetaData()
        existing.reflect(engine)
        existing.drop_all(engine)
    finally:
        engine.dispose()
    return url
