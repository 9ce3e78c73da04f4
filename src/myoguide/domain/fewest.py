"""Whole hundredths of a milligram: the fewest whole units that make an amount (a table over a
formulary's strengths alone), and a rate regimen's constants in hundredths."""

from __future__ import annotations

from decimal import Decimal
from math import gcd

from msgspec import Struct

SCALE = 100  # strengths are whole hundredths of a milligram (0.5 mg, 2.5 mg, ...)


class FewestTable(Struct):
    """Fewest whole units per total (in steps), and the strength picked last for each.

    `rows` (best, pick) is replaced whole when the table grows, never appended to in place, so
    a caller on another thread always reads two lists of the same length.
    """

    step: int
    coins: tuple[int, ...]
    rows: tuple[list[int | None], list[int]]

    @classmethod
    def of(cls, strengths: tuple[Decimal, ...]) -> FewestTable:
        """Return the empty table of a formulary's strengths in mg (strongest first)."""
        ints = [int(s * SCALE) for s in strengths]
        step = 0
        for v in ints:
            step = gcd(step, v)
        return cls(step, tuple(v // step for v in ints), ([0], [-1]))

    def upto(self, target: int) -> tuple[list[int | None], list[int]]:
        """Return the table's rows, filled up to `target` steps at least."""
        rows = self.rows
        if target < len(rows[0]):
            return rows
        best, pick = list(rows[0]), list(rows[1])
        coins = self.coins
        for total in range(len(best), target + 1):
            least: int | None = None
            chosen = -1
            for i, c in enumerate(coins):  # strongest first, so ties keep the larger units
                prev = best[total - c] if c <= total else None
                if prev is not None and (least is None or prev + 1 < least):
                    least, chosen = prev + 1, i
            best.append(least)
            pick.append(chosen)
        self.rows = (best, pick)
        return self.rows


class Hundredths(Struct, frozen=True):
    """A rate regimen's constants in whole hundredths, read once (see `doses._fast`)."""

    rate: int  # the rate's digits; the rate is rate / div (its high end: rate_high / div)
    rate_high: int
    div: int
    mg: int  # mg per unit of the dose (1 or 1000)
    split: int  # administrations a day (1 unless the source splits a daily total)
    step: int  # the smallest strength in hundredths of a mg (0: no verified product)
    # In hundredths of the dose's unit (mg a day for `cap`): the most whole units may make,
    # the stated maximum a figure is capped at, and the figure above which it warns.
    cap: Decimal | None
    clamp: Decimal | None
    warn: Decimal | None
