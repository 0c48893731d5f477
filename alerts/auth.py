"""Who may do what: roles, password hashes, and bearer tokens.

People sign in to the console with a user name and a password (accounts in the store,
``alerts.store.accounts``); machine clients (a hotline system, a partner's ingest) send a
bearer token. Either way a request ends up as a ``Person`` with a role:

- ``patrol`` — views incidents and acts on them (acknowledge, dispatch, resolve);
- ``ops`` — also silences, ledger edits and the config view;
- ``admin`` — also users.

Each role can do what the one before it can. Passwords are hashed with Argon2id
(argon2-cffi, its default parameters); a hash never leaves the store.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Mapping, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

ROLES = ("patrol", "ops", "admin")
# What each capability needs at least.
NEEDS = {"view": "patrol", "act": "patrol", "silence": "ops", "ledger": "ops", "config": "ops", "users": "admin"}

Holder = TypeVar("Holder")
_hasher = PasswordHasher()


@dataclass(frozen=True)
class Person:
    """Who a request comes from, as the audit trail names them."""

    name: str  # user name, or a machine client's name
    role: str
    display_name: str = ""

    def may(self, capability: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(NEEDS[capability])


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_matches(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def tokens_in(setting: str | None) -> list[str]:
    """The tokens one setting holds: usually one; while a token is rotated, the new and the
    old one separated by a comma, both valid until the old one is taken out."""
    return [token.strip() for token in (setting or "").split(",") if token.strip()]


def bearer_holder(authorization: str, holders: Mapping[str, Holder]) -> Holder | None:
    """Who holds the token an Authorization header offers (``holders``: token -> holder),
    or None. Every token is compared in constant time, so timing tells nothing."""
    if not authorization.startswith("Bearer "):
        return None
    offered = authorization.removeprefix("Bearer ").strip().encode()
    found = None
    for token, holder in holders.items():
        if hmac.compare_digest(token.encode(), offered):
            found = holder
    return found
