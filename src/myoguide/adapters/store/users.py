"""Durable user accounts with argon2id password hashes."""

from __future__ import annotations

import contextlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from myoguide.adapters.clock import SYSTEM_CLOCK
from myoguide.adapters.store.db import make_sessions, write_session
from myoguide.adapters.store.tables import MAX_USERNAME, UserModel, WebSessionModel
from myoguide.adapters.store.validation import clean_text, utc_instant
from myoguide.service.ports import Clock

MIN_PASSWORD = 12


class UserStore:
    """Durable store of user accounts, with argon2id password hashes."""

    def __init__(
        self, engine: Engine, *, hasher: PasswordHasher | None = None, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self._sessions = make_sessions(engine)
        self._hasher = hasher or PasswordHasher()
        self._clock = clock
        # Checked when the username is unknown, so that answer takes as long as a wrong password.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(32))

    def add_user(self, username: str, password: str) -> None:
        """Create an account; ValueError for a short password or a username already taken."""
        name = clean_text(username, "username", MAX_USERNAME)
        if not isinstance(password, str):
            raise ValueError("password: must be a string")
        if len(password) < MIN_PASSWORD:
            raise ValueError(f"password: must be at least {MIN_PASSWORD} characters")
        row = UserModel(
            username=name,
            password_hash=self._hasher.hash(password),
            created_at=utc_instant(self._clock.now(), "created_at"),
        )
        taken = ValueError(f"username: '{name}' is already taken")
        try:
            with write_session(self._sessions) as session:
                if session.scalar(select(UserModel.id).where(UserModel.username == name)):
                    raise taken
                session.add(row)
        except IntegrityError:
            raise taken from None

    def set_password(self, username: str, password: str) -> None:
        """Change a password and end every session of the account (LookupError if unknown)."""
        name = clean_text(username, "username", MAX_USERNAME)
        if not isinstance(password, str) or len(password) < MIN_PASSWORD:
            raise ValueError(f"password: must be at least {MIN_PASSWORD} characters")
        digest = self._hasher.hash(password)
        with write_session(self._sessions) as session:
            found = session.scalar(select(UserModel.id).where(UserModel.username == name))
            if found is None:
                raise LookupError(f"username: no account '{name}'")
            session.execute(
                update(UserModel).where(UserModel.id == found).values(password_hash=digest)
            )
            # In the same transaction: a stolen session must not outlive the password it used.
            session.execute(delete(WebSessionModel).where(WebSessionModel.username == name))

    def verify(self, username: str, password: str) -> bool:
        """Return whether the password is the user's; an unknown user costs a full check too."""
        name = username.strip() if isinstance(username, str) else ""
        secret = password if isinstance(password, str) else ""
        with self._sessions() as session:
            found = session.execute(
                select(UserModel.id, UserModel.password_hash).where(UserModel.username == name)
            ).first()
        if found is None:
            with contextlib.suppress(VerificationError):
                self._hasher.verify(self._dummy_hash, secret)
            return False
        user_id, stored = found
        try:
            self._hasher.verify(stored, secret)
        except (VerificationError, InvalidHashError):
            return False
        if self._hasher.check_needs_rehash(stored):
            with write_session(self._sessions) as session:
                session.execute(
                    update(UserModel)
                    .where(UserModel.id == user_id)
                    .values(password_hash=self._hasher.hash(secret))
                )
        return True

    def count(self) -> int:
        """Return the number of user accounts."""
        with self._sessions() as session:
            return int(session.scalar(select(func.count()).select_from(UserModel)) or 0)
