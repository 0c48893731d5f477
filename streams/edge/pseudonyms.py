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
import logging
import os
import secrets
from pathlib import Path

log = logging.getLogger("shaftwatch.privacy")

PREFIX = "p1:"  # version of the pseudonym scheme, so a key rotation can be told apart


def default_key_file() -> Path:
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "shaftwatch" / "pseudonym.key"


def load_key(env_name: str = "SHAFTWATCH_PSEUDONYM_KEY", create: bool = True) -> bytes:
    value = os.environ.get(env_name)
    if value:
        return value.encode()
    path = Path(os.environ.get("SHAFTWATCH_PSEUDONYM_KEY_FILE") or default_key_file())
    if path.exists():
        return path.read_text().strip().encode()
    if not create:
        raise RuntimeError(f"no pseudonym key: set {env_name} or SHAFTWATCH_PSEUDONYM_KEY_FILE")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
    log.warning("created a new pseudonym key", extra={"shaftwatch_ids": {"path": str(path)}})
    return path.read_text().strip().encode()


def pseudonymize(key: bytes, device_id: str) -> str:
    """The same device id and key always give the same pseudonym; the id cannot be recovered."""
    # "+86 139-1234-5678", "8613912345678" and "86 13912345678" are one phone.
    normalized = device_id.strip().lstrip("+").replace(" ", "").replace("-", "").lower()
    digest = hmac.new(key, normalized.encode(), hashlib.sha256).hexdigest()
    return PREFIX + digest[:32]
