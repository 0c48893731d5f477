"""A camera frame on ``frames``: the JPEG bytes are the value, what the frame is travels
in the Kafka headers (FrameMeta), checked before any decode."""

from __future__ import annotations

import typing
from dataclasses import dataclass

from streams.contract.records import SCHEMA_VERSION, RecordError, ts_problems

FRAME_HEADERS = ("camera_id", "site_id", "captured_at", "seq")


@dataclass(frozen=True)
class FrameMeta:
    """What travels in the Kafka headers of a JPEG frame on ``frames``."""

    camera_id: str
    site_id: str
    captured_at: float
    seq: int

    def headers(self) -> list[tuple[str, bytes]]:
        return [
            ("camera_id", self.camera_id.encode()),
            ("site_id", self.site_id.encode()),
            ("captured_at", repr(self.captured_at).encode()),
            ("seq", str(self.seq).encode()),
            ("v", str(SCHEMA_VERSION).encode()),
        ]

    @classmethod
    def from_headers(cls, headers: typing.Iterable[tuple[str, bytes]] | typing.Mapping[str, bytes]) -> FrameMeta:
        items = headers.items() if isinstance(headers, typing.Mapping) else headers
        found = {name: value for name, value in items}
        missing = [name for name in FRAME_HEADERS if name not in found]
        if missing:
            raise RecordError(f"frame headers missing: {', '.join(missing)}")
        try:
            captured_at = float(found["captured_at"].decode())
            seq = int(found["seq"].decode())
            camera_id = found["camera_id"].decode()
            site_id = found["site_id"].decode()
        except (UnicodeDecodeError, ValueError) as exc:
            raise RecordError(f"frame headers unreadable: {exc}") from None
        problems = ts_problems(captured_at)
        if problems:
            raise RecordError("captured_at: " + problems[0])
        return cls(camera_id, site_id, captured_at, seq)


JPEG_MAGIC = b"\xff\xd8\xff"


def check_jpeg(value: bytes | None) -> None:
    """Cheap structural check before any decode: present, and starts like a JPEG (its end
    is not looked at: a truncated frame is found when it is decoded)."""
    if not value:
        raise RecordError("empty frame (zero bytes)")
    if not value.startswith(JPEG_MAGIC):
        raise RecordError("not a JPEG (missing SOI marker)")
