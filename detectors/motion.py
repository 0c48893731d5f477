"""Motion gate: the cheap first stage of the camera pipeline.

Sealed shafts are static nearly all the time, so most frames stop here and never reach
the detector. As Frigate does it, the gate works on a small grey copy of the frame
(decoded straight from the JPEG at 1/4 or 1/8 scale, which is much cheaper than a full
decode) against a running-average background, only inside the camera's zones and
outside its motion masks. Slow light changes are absorbed by the running average; a
sudden change of most of the watched area at once (the IR switch at dusk, lightning,
headlights filling the view) resets the background and pauses the gate for a few frames
instead of firing.

The gate also tells when a camera has switched to infrared: an IR picture is grey. It
looks at the colour of a 1/8-size decode on the first frame, after every sudden change of
the whole view (which is what the switch looks like) and every ``infrared_check_every``
frames; the camera pipeline keeps the answer per camera and applies the night profile to
an infrared camera whatever the clock says.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from pydantic import ConfigDict

from detectors.geometry import Point

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in full-frame pixels


@dataclass(frozen=True)
class MotionRules:
    """Motion gate thresholds (configs/thresholds.yaml, section ``vision.motion``)."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    pixel_threshold: int = 25  # grey-level difference that counts as change (lower at night: less contrast)
    # Small enough for one distant person: in a 1080p view a walker 60-100 px tall changes
    # ~0.0002 of the picture; at 0.0015 the gate let none of them through (README).
    min_area_fraction: float = 0.0002  # of the watched area: smaller blobs are noise
    global_change_fraction: float = 0.5  # more than this changing at once: lighting, not motion
    pause_frames: int = 3  # frames to settle after a global change
    background_alpha: float = 0.05  # running-average speed: absorbs slow light changes
    scale: int = 4  # the gate's copy is 1/scale of the frame (2, 4 or 8: JPEG reduced decode)
    # A frame is infrared (grey) when 99% of its pixels differ by at most this many grey
    # levels between their colour channels. Colour footage, even dark, has more (lamps,
    # clothes, cars); an IR picture has ~0-3 (JPEG noise).
    infrared_max_chroma: int = 8
    infrared_check_every: int = 60  # frames between colour checks, besides those after a global change

    def __post_init__(self) -> None:
        if self.scale not in (1, 2, 4, 8):
            raise ValueError("scale must be 1, 2, 4 or 8 (the JPEG decoder's reduced sizes)")
        if not 0 < self.global_change_fraction <= 1:
            raise ValueError("global_change_fraction must be in (0, 1]")


_REDUCED = {1: cv2.IMREAD_GRAYSCALE, 2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
            8: cv2.IMREAD_REDUCED_GRAYSCALE_8}


def decode_small_grey(jpeg: bytes, scale: int) -> np.ndarray | None:
    """The gate's copy of a frame, decoded at reduced size; None when it is not an image."""
    return cv2.imdecode(np.frombuffer(jpeg, np.uint8), _REDUCED[scale])


def looks_infrared(jpeg: bytes, max_chroma: int) -> bool | None:
    """Whether the frame is grey (a camera in infrared mode); None when it does not decode."""
    small = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_REDUCED_COLOR_8)
    if small is None:
        return None
    chroma = small.max(axis=2) - small.min(axis=2)
    return bool(np.percentile(chroma, 99) <= max_chroma)


@dataclass
class MotionResult:
    motion: bool
    regions: list[Box] = field(default_factory=list)  # full-frame pixels
    changed_fraction: float = 0.0
    global_change: bool = False
    infrared: bool | None = None  # whether the frame is grey, when the gate looked; else None


def polygon_mask(shape: tuple[int, int], polygons: list[list[Point]]) -> np.ndarray:
    """A uint8 mask (255 inside) of normalized polygons, at the given (height, width)."""
    h, w = shape
    mask = np.zeros((h, w), np.uint8)
    for polygon in polygons:
        pts = np.array([[round(x * (w - 1)), round(y * (h - 1))] for x, y in polygon], np.int32)
        cv2.fillPoly(mask, [pts], 255)
    return mask


class MotionGate:
    """One camera's gate. ``check(jpeg)`` says whether anything moved inside its zones."""

    def __init__(self, zones: list[list[Point]], masks: list[list[Point]], rules: MotionRules = MotionRules()):
        self.zones = zones
        self.masks = masks
        self.rules = rules
        self.background: np.ndarray | None = None
        self.watch: np.ndarray | None = None
        self.watch_area = 0
        self.pause = 0
        self.since_colour_check: int | None = None  # None: never looked

    def _prepare(self, shape: tuple[int, int]) -> None:
        watch = polygon_mask(shape, self.zones)
        if self.masks:
            watch[polygon_mask(shape, self.masks) > 0] = 0
        self.watch = watch
        self.watch_area = max(1, int(np.count_nonzero(watch)))

    def check_grey(self, small: np.ndarray) -> MotionResult:
        small = cv2.GaussianBlur(small, (5, 5), 0)
        if self.background is None or self.background.shape != small.shape:
            self.background = small.astype(np.float32)
            self._prepare(small.shape)
            return MotionResult(False)
        diff = cv2.absdiff(small, cv2.convertScaleAbs(self.background))
        _, changed = cv2.threshold(diff, self.rules.pixel_threshold, 255, cv2.THRESH_BINARY)
        changed = cv2.bitwise_and(changed, self.watch)
        fraction = np.count_nonzero(changed) / self.watch_area
        if fraction > self.rules.global_change_fraction:
            # IR switch, lightning, headlights: the whole view changed. Start over from it.
            self.background = small.astype(np.float32)
            self.pause = self.rules.pause_frames
            return MotionResult(False, changed_fraction=fraction, global_change=True)
        cv2.accumulateWeighted(small, self.background, self.rules.background_alpha)
        if self.pause > 0:
            self.pause -= 1
            return MotionResult(False, changed_fraction=fraction)
        if fraction < self.rules.min_area_fraction:
            return MotionResult(False, changed_fraction=fraction)
        changed = cv2.dilate(changed, None, iterations=2)
        contours, _ = cv2.findContours(changed, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        min_blob = self.rules.min_area_fraction * self.watch_area
        s = self.rules.scale
        regions = []
        for contour in contours:
            if cv2.contourArea(contour) >= min_blob / 4:
                x, y, w, h = cv2.boundingRect(contour)
                regions.append((x * s, y * s, (x + w) * s, (y + h) * s))
        return MotionResult(bool(regions), regions, fraction)

    def check(self, jpeg: bytes) -> MotionResult:
        small = decode_small_grey(jpeg, self.rules.scale)
        if small is None:
            raise ValueError("the frame is not a decodable JPEG")
        result = self.check_grey(small)
        due = (self.since_colour_check is None or result.global_change
               or self.since_colour_check + 1 >= self.rules.infrared_check_every)
        if due:
            result.infrared = looks_infrared(jpeg, self.rules.infrared_max_chroma)
            self.since_colour_check = 0
        else:
            self.since_colour_check += 1
        return result
