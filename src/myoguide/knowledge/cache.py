"""A cache of validated knowledge on disk, keyed by the bytes it was validated from.

Parsing the YAML files is most of a one-shot command's start. A cache file holds the validated
structure as msgpack (no pickle: nothing in it can run code), after a header of its key and the
payload's own digest. The key covers the source bytes, the package, msgspec and Python versions
and the source of the modules that define and check the structures, so a change to any of them
misses the cache. Any problem (no folder, unwritable, corrupt, another key) falls back to
parsing; a cache file is used only when both digests match and it and its folder are the
user's own and writable by no one else.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, TypeVar

import msgspec

if TYPE_CHECKING:
    # Folders and files as strings or paths: pathlib (with urllib.parse and ipaddress) costs
    # the command's start-up more than the cache's whole read.
    Folder = str | os.PathLike[str]

try:
    # The built-in BLAKE2: hashlib would load OpenSSL's module, a start-up cost for one digest.
    from _blake2 import blake2b
except ImportError:  # pragma: no cover - a Python built without it
    from hashlib import blake2b

T = TypeVar("T")

MAGIC = b"myoguide-knowledge-cache/1\n"
_DIGEST = 32  # bytes of each digest (BLAKE2b-256)
# The modules whose code decides what a validated structure is: a change to one is a new key.
_SCHEMA_MODULES = ("model.py", "checks.py", "terminology.py", "loader.py", "cache.py")


@cache
def _fingerprint() -> bytes:
    """Return what, besides the source bytes, a cached structure depends on."""
    here = os.path.dirname(__file__)
    h = blake2b(MAGIC, digest_size=_DIGEST)
    for part in (msgspec.__version__, sys.version, sys.implementation.cache_tag):
        h.update(part.encode() + b"\0")
    # The package's __init__ holds its version (read as bytes: this layer imports no door).
    paths = [os.path.join(os.path.dirname(here), "__init__.py")]
    paths += [os.path.join(here, name) for name in _SCHEMA_MODULES]
    for path in paths:
        with open(path, "rb") as f:
            h.update(f.read())
    return h.digest()


def read_packaged(name: str) -> bytes:
    """Return the bytes of a data file shipped in myoguide/knowledge/data."""
    try:
        # Beside this module: importlib.resources would import zipfile, tempfile and more.
        with open(os.path.join(os.path.dirname(__file__), "data", name), "rb") as f:
            return f.read()
    except OSError:
        # Imported from a zip (the package Spark ships to its workers): the resource reader.
        from importlib import resources

        return (resources.files("myoguide.knowledge") / "data" / name).read_bytes()


def cache_key(kind: str, source: bytes) -> bytes:
    """Return the key of a structure of one kind validated from these source bytes."""
    h = blake2b(_fingerprint(), digest_size=_DIGEST)
    h.update(kind.encode() + b"\0")
    h.update(source)
    return h.digest()


def _private(st: os.stat_result) -> bool:
    """Tell whether a file or folder is this user's and writable by no one else."""
    # The digests catch damage, not a rewrite: anyone who can write here can compute a key.
    uid = os.geteuid() if hasattr(os, "geteuid") else st.st_uid
    return st.st_uid == uid and not st.st_mode & 0o022


def _payload(path: str, key: bytes) -> bytes | None:
    """Return the file's msgpack payload if it holds this key and is intact, else None."""
    try:
        with open(path, "rb") as f:
            if not (_private(os.fstat(f.fileno())) and _private(os.stat(os.path.dirname(path)))):
                return None
            data = f.read()
    except OSError:
        return None
    head = len(MAGIC)
    if data[:head] != MAGIC or data[head : head + _DIGEST] != key:
        return None
    check, payload = data[head + _DIGEST : head + 2 * _DIGEST], data[head + 2 * _DIGEST :]
    if blake2b(payload, digest_size=_DIGEST).digest() != check:
        return None
    return payload


def _read(path: str, key: bytes, type_: type[T]) -> T | None:
    """Return the cached structure if the file holds this key and an intact payload, else None."""
    payload = _payload(path, key)
    if payload is None:
        return None
    try:
        return msgspec.msgpack.decode(payload, type=type_)
    except (msgspec.DecodeError, ValueError, TypeError):
        return None


def _write(path: str, key: bytes, value: object) -> None:
    """Write the cache file atomically (a reader sees the old file or the new, never a part)."""
    import tempfile  # here: only a rebuild writes

    payload = msgspec.msgpack.encode(value)
    folder = os.path.dirname(path)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    if not _private(os.stat(folder)):
        return  # a folder others can write to is never read from, so not written to either
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(MAGIC + key + blake2b(payload, digest_size=_DIGEST).digest() + payload)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def cached_payload(kind: str, source: bytes, folder: Folder | None) -> bytes | None:
    """Return the intact msgpack payload `folder` caches for `source`, or None (no cache, a miss).

    For a caller that decodes only part of the structure first; on None it calls `cached`.
    """
    if folder is None:
        return None
    try:
        key = cache_key(kind, source)
    except OSError:
        return None
    return _payload(os.path.join(os.fspath(folder), f"{kind}.msgpack"), key)


def cached(
    kind: str, source: bytes, type_: type[T], build: Callable[[], T], folder: Folder | None
) -> T:
    """Return the structure validated from `source`: from `folder`'s cache, or built and cached.

    `build` parses and validates (and raises on bad knowledge, so nothing invalid is cached);
    with no folder, or when the cache cannot be read or written, it is simply called.
    """
    if folder is None:
        return build()
    path = os.path.join(os.fspath(folder), f"{kind}.msgpack")
    try:
        key = cache_key(kind, source)
    except OSError:  # the package's own sources unreadable (a zip import): no safe key
        return build()
    found = _read(path, key, type_)
    if found is not None:
        return found
    value = build()
    # A cache that cannot be written only costs the next start its parse.
    with contextlib.suppress(OSError, TypeError, ValueError):
        _write(path, key, value)
    return value
