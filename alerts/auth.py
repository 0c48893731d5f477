"""Bearer tokens: the one check of an ``Authorization: Bearer <token>`` header, used by
the console API (operators) and the partners' ingest API (utilities, carriers)."""

from __future__ import annotations

import hmac
from typing import Mapping, TypeVar

Holder = TypeVar("Holder")


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
