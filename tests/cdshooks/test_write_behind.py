"""The card registry's write-behind: a lookup never misses a batch being written."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence

from myoguide.adapters.http.cds import WriteBehindRegistry


class SlowRegistry:
    """A registry whose writes take a while, as a durable commit can under load."""

    def __init__(self) -> None:
        self.rows: dict[str, str] = {}
        self.writing = threading.Event()

    def remember(self, service_id: str, cards: Mapping[str, str]) -> None:
        self.writing.set()
        time.sleep(0.3)
        self.rows.update(cards)

    def summaries(self, uuids: Sequence[str]) -> Mapping[str, str]:
        return {u: self.rows[u] for u in uuids if u in self.rows}


def test_a_lookup_waits_for_the_batch_the_background_is_writing() -> None:
    store = SlowRegistry()
    registry = WriteBehindRegistry(store)
    registry.remember("myoguide-patient-view", {"card-1": "topic: summary"})
    # The background flush (every 0.25 s) takes the card and is still writing it...
    assert store.writing.wait(2)
    # ...when feedback for that card arrives: the lookup must wait, not miss it.
    assert registry.summaries(["card-1"]) == {"card-1": "topic: summary"}
