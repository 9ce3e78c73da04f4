"""Fakes for the service's ports, shared by the tests: a clock moved by hand, an in-memory store."""

from __future__ import annotations

import datetime as dt


class FakeClock:
    """The Clock port at a fixed instant the test moves by setting `at`."""

    def __init__(self, at: dt.datetime) -> None:
        self.at = at

    def now(self) -> dt.datetime:
        """Return the instant set."""
        return self.at

    def today(self) -> dt.date:
        """Return the date of the instant set."""
        return self.at.date()
