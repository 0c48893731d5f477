"""Sealing what only some roles may read: a tip-off reporter's contact is stored encrypted
(Fernet: AES-128-CBC with HMAC-SHA256, from the ``cryptography`` package) under a key that
never lives in the repository (``alerts.keys``: SHAFTWATCH_SEALING_KEY, or the file named
by SHAFTWATCH_SEALING_KEY_FILE). The store holds only the sealed text; the console opens it
for ops and admins, never for patrol members."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken

from alerts.keys import load_secret


class Sealer:
    def __init__(self, secret: str):
        # Fernet wants 32 url-safe base64 bytes; any secret string is stretched to that.
        self._fernet = Fernet(base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest()))

    @classmethod
    def from_environment(cls, create: bool = True) -> Sealer:
        return cls(load_secret("SHAFTWATCH_SEALING_KEY", "SHAFTWATCH_SEALING_KEY_FILE", "sealing.key", create))

    def seal(self, text: str) -> str:
        return self._fernet.encrypt(text.encode()).decode()

    def open(self, sealed: str) -> str | None:
        """The clear text, or None when it was sealed under another key (or tampered with)."""
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            return None
