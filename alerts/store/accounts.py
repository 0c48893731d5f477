"""People's accounts in the store: users with a role, their sessions, and the login
attempts that throttle guessing.

A session is a random token in an HttpOnly cookie; the store keeps only its SHA-256, with
the session's CSRF token and expiry. Every change to an account is audited.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time

import sqlalchemy as sa

from alerts.auth import ROLES, Person, hash_password, password_matches
from alerts.store.schema import Conflict, NotFound, StoreError, login_attempts, sessions, users, write_audit

USERNAME = re.compile(r"^[a-z][a-z0-9._-]{1,63}$")
MIN_PASSWORD = 10
THROTTLE_WINDOW_S = 900.0
MAX_FAILURES_PER_USER = 5  # in the window: then the user name is locked until the oldest failure ages out
MAX_FAILURES_PER_REMOTE = 20


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def one_time_password() -> str:
    """A password to hand over once (printed by `shaftwatch users add` and `make run`)."""
    return secrets.token_urlsafe(12)


class Accounts:
    def __init__(self, engine: sa.Engine):
        self.engine = engine

    # ------------------------------------------------------------------ users

    def add(self, username: str, role: str, password: str, created_by: str, display_name: str = "") -> dict:
        if not USERNAME.match(username):
            raise StoreError("a user name is 2-64 characters: lower-case letters, digits, '.', '_' or '-', "
                             "starting with a letter")
        if role not in ROLES:
            raise StoreError(f"role must be one of {list(ROLES)}")
        if len(password) < MIN_PASSWORD:
            raise StoreError(f"a password has at least {MIN_PASSWORD} characters")
        with self.engine.begin() as c:
            if c.execute(sa.select(users.c.id).where(users.c.username == username)).first() is not None:
                raise Conflict(f"user {username!r} exists")
            c.execute(users.insert().values(username=username, display_name=display_name or username, role=role,
                                            password_hash=hash_password(password), created_at=time.time(),
                                            created_by=created_by))
            write_audit(c, None, created_by, "user_added", {"username": username, "role": role})
        return self.get(username)

    def get(self, username: str) -> dict | None:
        """A user without the password hash."""
        with self.engine.connect() as c:
            row = c.execute(sa.select(users).where(users.c.username == username)).first()
        return _public(row) if row else None

    def all(self) -> list[dict]:
        with self.engine.connect() as c:
            return [_public(r) for r in c.execute(sa.select(users).order_by(users.c.username))]

    def set_password(self, username: str, password: str, changed_by: str) -> None:
        if len(password) < MIN_PASSWORD:
            raise StoreError(f"a password has at least {MIN_PASSWORD} characters")
        with self.engine.begin() as c:
            row = c.execute(sa.select(users.c.id).where(users.c.username == username)).first()
            if row is None:
                raise NotFound(f"no user {username!r}")
            c.execute(users.update().where(users.c.id == row.id).values(password_hash=hash_password(password),
                                                                          disabled_at=None))
            c.execute(sessions.delete().where(sessions.c.user_id == row.id))  # old sessions end
            write_audit(c, None, changed_by, "password_set", {"username": username})

    def disable(self, username: str, disabled_by: str) -> None:
        with self.engine.begin() as c:
            row = c.execute(sa.select(users.c.id).where(users.c.username == username)).first()
            if row is None:
                raise NotFound(f"no user {username!r}")
            c.execute(users.update().where(users.c.id == row.id).values(disabled_at=time.time()))
            c.execute(sessions.delete().where(sessions.c.user_id == row.id))
            write_audit(c, None, disabled_by, "user_disabled", {"username": username})

    # ------------------------------------------------------------------ signing in

    def retry_after(self, username: str, remote: str, now: float | None = None) -> float:
        """Seconds until this user name (or this address) may try again; 0 when it may now."""
        now = time.time() if now is None else now
        since = now - THROTTLE_WINDOW_S
        with self.engine.connect() as c:
            waits = []
            for column, value, limit in ((login_attempts.c.username, username, MAX_FAILURES_PER_USER),
                                         (login_attempts.c.remote, remote, MAX_FAILURES_PER_REMOTE)):
                failures = c.execute(sa.select(login_attempts.c.at).where(
                    column == value, login_attempts.c.ok.is_(False), login_attempts.c.at > since)
                    .order_by(login_attempts.c.at.desc()).limit(limit)).scalars().all()
                if len(failures) >= limit:
                    waits.append(min(failures) + THROTTLE_WINDOW_S - now)
        return max([0.0, *waits])

    def sign_in(self, username: str, password: str, remote: str, ttl_s: float) -> tuple[Person, str, str] | None:
        """(person, session token, CSRF token) when the password is right and the user
        active; None otherwise. Every attempt is recorded and audited. Check
        ``retry_after`` first: this does not refuse a throttled name by itself."""
        with self.engine.begin() as c:
            row = c.execute(sa.select(users).where(users.c.username == username)).first()
            ok = row is not None and row.disabled_at is None and password_matches(row.password_hash, password)
            now = time.time()
            c.execute(login_attempts.insert().values(username=username[:64], remote=remote[:64], at=now, ok=ok))
            write_audit(c, None, username[:100], "signed_in" if ok else "sign_in_refused", {"remote": remote})
            if not ok:
                return None
            token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
            c.execute(sessions.delete().where(sessions.c.expires_at < now))  # tidy as we go
            c.execute(sessions.insert().values(id=_digest(token), user_id=row.id, csrf=csrf, created_at=now,
                                               expires_at=now + ttl_s))
        return Person(row.username, row.role, row.display_name), token, csrf

    def session(self, token: str) -> tuple[Person, str] | None:
        """(person, CSRF token) of a live session of an active user; None otherwise."""
        with self.engine.connect() as c:
            row = c.execute(sa.select(users, sessions.c.csrf).join(sessions, sessions.c.user_id == users.c.id)
                            .where(sessions.c.id == _digest(token), sessions.c.expires_at > time.time(),
                                   users.c.disabled_at.is_(None))).first()
        return (Person(row.username, row.role, row.display_name), row.csrf) if row else None

    def sign_out(self, token: str, person: Person) -> None:
        with self.engine.begin() as c:
            c.execute(sessions.delete().where(sessions.c.id == _digest(token)))
            write_audit(c, None, person.name, "signed_out", {})


def _public(row) -> dict:
    out = dict(row._mapping)
    out.pop("password_hash", None)
    return out
