"""The evidence store: files on disk (evidence_dir in shaftwatch.yaml) — annotated camera
snapshots, and photos people upload (patrol visits, tip-offs, drone teams).

A signal or a record refers to a file as ``snapshot:<path>`` or ``photo:<path>`` below
evidence_dir; the console serves it from there to signed-in people. Paths are built from
ids only, never from input text, and a photo is stored only if its bytes are a JPEG or a
PNG of a sane size.
"""

from __future__ import annotations

import re
import secrets
import time
from pathlib import Path

SAFE = re.compile(r"^[A-Za-z0-9_-]+$")
KINDS = {"snapshot": "snapshots", "photo": "photos"}
PHOTO_FOLDERS = ("visits", "tipoffs", "external")
MAX_PHOTO_BYTES = 8 * 1024 * 1024
IMAGE_TYPES = {b"\xff\xd8\xff": ".jpg", b"\x89PNG\r\n\x1a\n": ".png"}


class EvidenceError(ValueError):
    pass


class EvidenceStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def _write(self, kind: str, folder: str, ts: float, name: str, data: bytes, suffix: str) -> str:
        day = time.strftime("%Y-%m-%d", time.gmtime(ts))
        relative = Path(KINDS[kind]) / folder / day / f"{name}{suffix}"
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.replace(path)  # readers never see half a file
        return f"{kind}:{relative.as_posix()}"

    def save_snapshot(self, camera_id: str, ts: float, name: str, jpeg: bytes) -> str:
        if not (SAFE.match(camera_id) and SAFE.match(name)):
            raise ValueError("camera id and name must be plain ids")
        return self._write("snapshot", camera_id, ts, name, jpeg, ".jpg")

    def save_photo(self, folder: str, ts: float, data: bytes) -> str:
        """A photo people uploaded, under a random name; EvidenceError unless it is a JPEG
        or PNG of at most MAX_PHOTO_BYTES."""
        if folder not in PHOTO_FOLDERS:
            raise ValueError(f"folder is one of {PHOTO_FOLDERS}")
        if not data or len(data) > MAX_PHOTO_BYTES:
            raise EvidenceError(f"a photo has 1 to {MAX_PHOTO_BYTES} bytes")
        suffix = next((s for magic, s in IMAGE_TYPES.items() if data.startswith(magic)), None)
        if suffix is None:
            raise EvidenceError("a photo is a JPEG or a PNG")
        return self._write("photo", folder, ts, secrets.token_hex(8), data, suffix)

    def path_of(self, reference: str) -> Path | None:
        """The file behind a reference, if it is one and stays inside the store."""
        kind, _, relative = reference.partition(":")
        if kind not in KINDS or not relative.startswith(KINDS[kind] + "/"):
            return None
        path = (self.root / relative).resolve()
        return path if path.is_relative_to(self.root.resolve()) and path.is_file() else None
