"""Errors that say where they happened: the input field, or the knowledge file and key."""

from __future__ import annotations


class MyoguideError(Exception):
    """Base class of the errors myoguide raises on purpose."""


class InputError(MyoguideError):
    """An input that cannot be used; `field` is its dotted path in the patient state."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class KnowledgeError(MyoguideError):
    """The knowledge file failed validation; names the file and the key."""

    def __init__(self, file: str, key: str, message: str) -> None:
        super().__init__(f"{file}: {key}: {message}")
        self.file = file
        self.key = key
        self.message = message


class StoreUnavailable(MyoguideError):
    """The record cannot be written just now (full or read-only disk, lock timeout)."""
