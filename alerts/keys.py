"""Secret keys that never live in the repository: the one way ShaftWatch finds one.

A key comes from an environment variable, or from a file named by a second variable, or
— for a single-machine demo only — from a file created once under ~/.config/shaftwatch/
with owner-only permissions. Used for the pseudonym key (carrier device ids) and the
sealing key (tip-off reporters' contacts).
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

log = logging.getLogger("shaftwatch.keys")


def default_key_file(name: str) -> Path:
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "shaftwatch" / name


def load_secret(env_name: str, file_env_name: str, file_name: str, create: bool = True) -> str:
    """The key in ``env_name``, else in the file ``file_env_name`` names, else in the
    default file ``file_name`` (created with a random key when ``create``)."""
    value = os.environ.get(env_name)
    if value:
        return value
    path = Path(os.environ.get(file_env_name) or default_key_file(file_name))
    if path.exists():
        return path.read_text().strip()
    if not create:
        raise RuntimeError(f"no key: set {env_name} or {file_env_name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
    log.warning("created a new key", extra={"shaftwatch_ids": {"path": str(path)}})
    return path.read_text().strip()
