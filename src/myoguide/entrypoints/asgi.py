"""The ASGI app factory a `serve --workers N` worker process starts from."""

from __future__ import annotations

from typing import TYPE_CHECKING

from myoguide.bootstrap import ServeConfig, apply_server_limits, build_http_app, settings

if TYPE_CHECKING:
    from fastapi import FastAPI


def worker_app() -> FastAPI:
    """Build the app in a `serve --workers N` process from the options its parent handed over."""
    text = settings().serve_config
    if not text:
        raise RuntimeError("MYOGUIDE_SERVE_CONFIG is not set: start workers with myoguide serve")
    # Each worker builds its connections' protocol itself: give it the same deadlines (ADR 0018).
    apply_server_limits()
    app = build_http_app(ServeConfig.from_json(text))
    import gc

    # As in the single-process server: what start-up built lives as long as the worker, so
    # the collector need not scan it again on every pass (issue 24).
    gc.collect()
    gc.freeze()
    return app
