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


# 8K UHD. A few hundred bytes can claim 20000 x 20000 pixels, which the decoder would fill
# in (1.2 GB and 13 s on this machine, found by fuzzing): the size is read from the
# frame header and checked before any decode.
MAX_FRAME_PIXELS = 7680 * 4320
_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_STANDALONE_MARKERS = {0x01, *range(0xD0, 0xD8)}  # TEM, RSTn: no length field


def jpeg_size(value: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's frame header (SOFn), or None when there is none before
    the image data. Reads markers only, never the compressed data."""
    i = 2
    while i + 4 <= len(value):
        if value[i] != 0xFF:
            return None
        marker = value[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _STANDALONE_MARKERS:
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no frame header came first
            return None
        length = int.from_bytes(value[i + 2:i + 4], "big")
        if marker in _SOF_MARKERS:
            if length < 7 or i + 9 > len(value):
                return None
            return int.from_bytes(value[i + 7:i + 9], "big"), int.from_bytes(value[i + 5:i + 7], "big")
        if length < 2:
            return None
        i += 2 + length
    return None


def check_jpeg(value: bytes | None) -> None:
    """Cheap structural check before any decode: present, starts like a JPEG, and its frame
    header gives a size that is neither zero nor larger than MAX_FRAME_PIXELS (the end is
    not looked at: a truncated frame is found when it is decoded)."""
    if not value:
        raise RecordError("empty frame (zero bytes)")
    if not value.startswith(JPEG_MAGIC):
        raise RecordError("not a JPEG (missing SOI marker)")
    size = jpeg_size(value)
    if size is None:
        raise RecordError("not a readable JPEG (no frame header before the image data)")
    width, height = size
    if width == 0 or height == 0:
        raise RecordError(f"JPEG of {width}x{height} pixels: no picture")
    if width * height > MAX_FRAME_PIXELS:
        raise RecordError(f"JPEG of {width}x{height} pixels: larger than 8K ({MAX_FRAME_PIXELS:,} pixels), "
                          "send frames at the camera's configured size")
