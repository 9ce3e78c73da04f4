"""The keys kept in the data folder: the session signing key and the record chain's MAC keys."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from myoguide.errors import InputError

if TYPE_CHECKING:
    from myoguide.adapters.store.chain import ChainKeys


def data_folder(path: Path) -> Path:
    """Create the data folder readable by the service's user only (0700), if it is not there."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def secret_key(data_dir: Path) -> str:
    """Return the session signing key kept in the data folder, made on first use."""
    import secrets  # here: it pulls in hmac and hashlib's OpenSSL, which `recommend` never needs

    data_folder(data_dir)
    path = data_dir / "secret_key"
    if not path.exists():
        # Kept on disk so sessions survive a restart; readable by the owner only.
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(48))
    return path.read_text().strip()


def chain_keys(data_dir: Path, given: str | None) -> ChainKeys:
    """Return the chain's MAC keys from `given` (the environment) or the data folder's key file.

    Both list keys newest first (comma-separated, or one a line): the first seals new rows,
    the others still verify rows sealed before a rotation.
    """
    import secrets

    from myoguide.adapters.store.chain import ChainKeys

    if given is not None:
        text = given.replace(",", "\n")
    else:
        path = data_folder(data_dir) / "chain_key"
        if not path.exists():
            # Made on first start, readable by the owner only; kept outside the database.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32) + "\n")
        text = path.read_text()
    keys = tuple(line.strip().encode() for line in text.splitlines() if line.strip())
    try:
        return ChainKeys(keys)
    except ValueError as exc:
        raise InputError("MYOGUIDE_CHAIN_KEY", str(exc)) from None
