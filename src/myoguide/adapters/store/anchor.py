"""The chains' newest links, kept in a file outside the database so truncation shows.

A MAC chain shows rewriting, but deleting the newest rows leaves a shorter chain that still
holds. The anchor file records, per chain, the newest row's id and MAC after every append;
`record verify` then requires that row to be in the record with that MAC. The file is sealed
with the chain key, so it cannot be edited to match a shortened record without the key.
"""

from __future__ import annotations

import fcntl
import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path

from myoguide.adapters.store.chain import ChainKeys

CHAINS = ("answers", "decisions")


@dataclass(frozen=True)
class Head:
    """A chain's newest link: its row id and MAC."""

    last_id: int
    mac: str


class AnchorError(ValueError):
    """The anchor file cannot be read, or its seal does not hold."""


class ChainAnchor:
    """Reads and advances the heads kept in one file (0600), serialised by a lock file."""

    def __init__(self, path: Path, keys: ChainKeys) -> None:
        self.path = path
        self._keys = keys

    def read(self) -> dict[str, Head] | None:
        """Return the kept heads, or None when no head was ever kept (AnchorError if altered)."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        try:
            doc = json.loads(text)
            heads = {c: Head(int(doc[c]["id"]), str(doc[c]["mac"])) for c in CHAINS if c in doc}
            seal = str(doc["seal"])
        except (ValueError, KeyError, TypeError):
            raise AnchorError(f"the chain head file {self.path} cannot be read") from None
        if not any(hmac.compare_digest(seal, self._seal(heads, k)) for k in self._keys.keys):
            raise AnchorError(f"the chain head file {self.path} was altered (its seal fails)")
        return heads

    def advance(self, chain: str, head: Head) -> None:
        """Record a chain's new head, unless a newer one is already kept."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock = os.open(self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                heads = self.read() or {}
            except AnchorError:
                # An unreadable file is reported by `record verify`; it is not overwritten.
                return
            kept = heads.get(chain)
            if kept is not None and kept.last_id >= head.last_id:
                return
            heads[chain] = head
            self._write(heads)
        finally:
            os.close(lock)

    def adopt(self, heads: dict[str, Head]) -> None:
        """Keep these heads for chains with none kept yet (first start with a keyed record)."""
        for chain, head in heads.items():
            self.advance(chain, head)

    def _write(self, heads: dict[str, Head]) -> None:
        """Replace the file with these heads and their seal, atomically."""
        doc: dict[str, object] = {c: {"id": h.last_id, "mac": h.mac} for c, h in heads.items()}
        doc["seal"] = self._seal(heads, self._keys.keys[0])
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(doc, sort_keys=True))
        os.replace(tmp, self.path)

    @staticmethod
    def _seal(heads: dict[str, Head], key: bytes) -> str:
        """Return the MAC over the heads in canonical form."""
        text = json.dumps(
            {c: [h.last_id, h.mac] for c, h in sorted(heads.items())}, separators=(",", ":")
        )
        return hmac.new(key, f"myoguide-chain-head\n{text}".encode(), "sha256").hexdigest()
