"""What the pages need from sign-in storage: protocols no use case reads, so kept by the door."""

from __future__ import annotations

from typing import Protocol


class UserStore(Protocol):
    """Sign-in accounts."""

    def verify(self, username: str, password: str) -> bool:
        """Return True if the password is right for the user."""
        ...

    def count(self) -> int:
        """Return the number of accounts."""
        ...


class SessionStore(Protocol):
    """Server-side sign-in sessions: a cookie's secret is only good while the store keeps it."""

    def start(self, username: str) -> str:
        """Open a session and return its secret."""
        ...

    def user_of(self, token: str) -> str | None:
        """Return the user of a live session, or None."""
        ...

    def end(self, token: str) -> None:
        """End one session."""
        ...


class SigninThrottle(Protocol):
    """Slows and temporarily locks sign-in after failures, per account and per address."""

    def wait_seconds(self, username: str, address: str) -> int:
        """Return how long sign-in stays refused (0: it may be tried)."""
        ...

    def failed(self, username: str, address: str) -> None:
        """Count a failure."""
        ...

    def succeeded(self, username: str) -> None:
        """Forget the account's failures."""
        ...
