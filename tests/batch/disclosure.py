"""The reader's view of a protected table: every value each hidden cell could take."""

from __future__ import annotations

import itertools


def bounds(shown: list[int | None], total: int) -> list[tuple[int, int]]:
    """Return (least, most) each hidden cell (None) could be, given the shown cells and total."""
    hidden = [i for i, v in enumerate(shown) if v is None]
    rest = total - sum(v for v in shown if v is not None)
    ranges: dict[int, set[int]] = {i: set() for i in hidden}
    # Each hidden cell is at least 1 (zeros are shown); try every split of the rest.
    for split in itertools.product(range(1, rest + 1), repeat=len(hidden)):
        if sum(split) == rest:
            for i, v in zip(hidden, split, strict=True):
                ranges[i].add(v)
    return [(min(ranges[i]), max(ranges[i])) for i in hidden]
