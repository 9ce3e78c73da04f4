"""Garbage collection held off while a chart is parsed and answered (issue 24, ADR 0026).

A parsed chart is a tree of tens of thousands of dicts and lists with no reference cycles: it
is freed by reference counting alone. While it is built, CPython's cyclic collector runs again
and again over it (and, after `gc.freeze`, a full collection comes sooner, since little is
counted as long-lived), which cost up to a third of a big chart's answer. The pause is shared
by threads: collection is off while any paused block runs and back on, if it was on, when the
last one ends; the garbage with cycles made meanwhile is collected then.
"""

from __future__ import annotations

import gc

# The lock type itself: threading (with weakref) is a start-up cost the one-shot command skips.
from _thread import allocate_lock
from collections.abc import Iterator
from contextlib import contextmanager

_lock = allocate_lock()
_depth = 0
_resume = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """Hold off cyclic garbage collection for the block (nested and threaded blocks share it)."""
    global _depth, _resume
    with _lock:
        if _depth == 0:
            # A process that already runs without collection (a one-shot command) keeps so.
            _resume = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _resume:
                gc.enable()
