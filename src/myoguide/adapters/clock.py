"""The system clock, the one place the time of day is read (UTC)."""

from __future__ import annotations

import datetime as dt


class SystemClock:
    """The Clock port (service.ports.Clock) over the system clock, in UTC."""

    def today(self) -> dt.date:
        """Return today's date in UTC."""
        return dt.datetime.now(dt.UTC).date()

    def now(self) -> dt.datetime:
        """Return the current instant in UTC."""
        return dt.datetime.now(dt.UTC)


# Stateless, so one instance serves every default.
SYSTEM_CLOCK = SystemClock()
