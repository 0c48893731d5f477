"""Pseudonymization of carrier device ids with a keyed hash (HMAC-SHA256).

The key never lives in the repository. It comes from the environment variable named in
shaftwatch.yaml (``pseudonym_key_env``, default SHAFTWATCH_PSEUDONYM_KEY), or from the file
named by SHAFTWATCH_PSEUDONYM_KEY_FILE, or, for a single-machine demo, from a key file
created once under ~/.config/shaftwatch/ with owner-only permissions. The police can hash
their watchlist with the same key, so lists match without clear ids in the system.
"""

from __future__ import annotations

import hashlib
import hmac

from alerts.keys import load_secret


PREFIX = "p1:"  # version of the pseudonym scheme, so a key rotation can be told apart


def load_key(env_name: str = "SHAFTWATCH_PSEUDONYM_KEY", create: bool = True) -> bytes:
    return load_secret(env_name, "SHAFTWATCH_PSEUDONYM_KEY_FILE", "pseudonym.key", create).encode()


def pseudonymize(key: bytes, device_id: str) -> str:
    """The same device id and key always give the same pseudonym; the id cannot be recovered."""
    # "+86 139-1234-5678", "8613912345678" and "86 13912345678" are one phone.
    normalized = device_id.strip().lstrip("+").replace(" ", "").replace("-", "").lower()
    digest = hmac.new(key, normalized.encode(), hashlib.sha256).hexdigest()
    return PREFIX + digest[:32]
