"""cameras.yaml: cameras, their sampling, zones (normalized polygons) and masks."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from detectors.boxes import GROUPS, LABELS
from detectors.camera import CameraSpec
from detectors.tracking import ZoneSpec
from streams.config.base import Section, unique_ids

# What the detector reports, or a group of labels ("vehicle": car, truck, bus, motorcycle).
Label = Literal[LABELS + tuple(GROUPS)]

Point = tuple[float, float]


def check_polygon(points: list[Point]) -> list[Point]:
    if len(points) < 3:
        raise ValueError("a polygon needs at least 3 points")
    for x, y in points:
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise ValueError(f"point ({x}, {y}) is outside 0..1 (coordinates are normalized to the frame)")
    return points


class Zone(Section):
    """A polygon in normalized frame coordinates; an object is in it when its footpoint is."""

    name: str = Field(pattern=r"^[a-z0-9_]+$")
    polygon: list[Point]
    objects: list[Label] = list(LABELS)
    min_frames: int = Field(ZoneSpec.min_frames, ge=1)
    loiter_s: float = Field(ZoneSpec.loiter_s, ge=0)
    min_signal_interval_s: float | None = Field(
        None, ge=0, description="this zone's report interval (new objects within it are grouped); "
                                "default: thresholds.yaml vision.min_signal_interval_s")

    @field_validator("polygon")
    @classmethod
    def _polygon(cls, v: list[Point]) -> list[Point]:
        return check_polygon(v)


class Mask(Section):
    polygon: list[Point]
    applies_to: Literal["motion", "objects", "both"] = "both"

    @field_validator("polygon")
    @classmethod
    def _polygon(cls, v: list[Point]) -> list[Point]:
        return check_polygon(v)


class Camera(Section):
    id: str = Field(pattern=r"^[A-Z0-9-]{2,32}$")
    site_id: str
    source: str = Field(description="RTSP/HTTP URL, video file or image folder; 'demo:' plays footage")
    fps: float = Field(1.0, gt=0, le=30)
    width: int = Field(1280, ge=64, le=7680)
    height: int = Field(720, ge=64, le=4320)
    jpeg_quality: int = Field(80, ge=10, le=100)
    zones: list[Zone] = Field(min_length=1)
    masks: list[Mask] = []


class GatewaySettings(Section):
    """The camera gateway's buffer on local disk for when it cannot reach Kafka (a dropped
    mountain link): per camera, at most ``spool_max_mb`` and ``spool_max_age_s``, oldest
    dropped first. ``spool_max_mb: 0`` keeps nothing (frames skipped while Kafka is away)."""

    spool_dir: str = Field("spool", description="relative to the data dir, or absolute")
    spool_max_mb: float = Field(512.0, ge=0)
    spool_max_age_s: float = Field(3600.0, gt=0)


class CamerasFile(Section):
    gateway: GatewaySettings = GatewaySettings()
    cameras: list[Camera]

    @model_validator(mode="after")
    def _unique_ids(self) -> CamerasFile:
        unique_ids(self.cameras, "cameras")
        return self


def camera_spec(camera: Camera) -> CameraSpec:
    """The camera pipeline's view of a configured camera: its zones and masks."""
    zones = [ZoneSpec(z.name, [tuple(p) for p in z.polygon], tuple(z.objects), z.min_frames, z.loiter_s,
                      z.min_signal_interval_s) for z in camera.zones]
    motion = [[tuple(p) for p in m.polygon] for m in camera.masks if m.applies_to in ("motion", "both")]
    objects = [[tuple(p) for p in m.polygon] for m in camera.masks if m.applies_to in ("objects", "both")]
    return CameraSpec(camera.id, camera.site_id, zones, motion, objects)
