"""The evidence store: annotated snapshots on disk (evidence_dir in shaftwatch.yaml).

A signal refers to its snapshot as ``snapshot:<path below evidence_dir>``; the console
serves it from there. Paths are built from ids only, never from input text."""

from __future__ import annotations

import re
import time
from pathlib import Path

SAFE = re.compile(r"^[A-Za-z0-9_-]+$")


class EvidenceStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def save_snapshot(self, camera_id: str, ts: float, name: str, jpeg: bytes) -> str:
        if not (SAFE.match(camera_id) and SAFE.match(name)):
            raise ValueError("camera id and name must be plain ids")
        day = time.strftime("%Y-%m-%d", time.gmtime(ts))
        relative = Path("snapshots") / camera_id / day / f"{name}.jpg"
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        tmp.write_bytes(jpeg)
        tmp.replace(path)  # readers never see half a file
        return f"snapshot:{relative.as_posix()}"

    def path_of(self, reference: str) -> Path | None:
        """The file behind a ``snapshot:`` reference, if it is one and stays inside the store."""
        if not reference.startswith("snapshot:"):
            return None
        path = (self.root / reference.removeprefix("snapshot:")).resolve()
        return path if path.is_relative_to(self.root.resolve()) and path.is_file() else None
