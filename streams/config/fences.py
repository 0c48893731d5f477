"""fences.yaml: electronic-fence zones (lon/lat polygons or cell ids), the sites each
protects, their hours, and the watchlist file."""

from __future__ import annotations

from pydantic import Field, model_validator

from detectors.fence import Zone as DetectorZone
from streams.config.base import Section, located, unique_ids
from streams.config.cameras import Point


class FenceZone(Section):
    id: str = Field(pattern=r"^[A-Z0-9-]{2,32}$")
    name: str
    site_ids: list[str] = Field(min_length=1)
    # Either a lon/lat polygon (outer ring, no holes) or a set of carrier cell ids.
    polygon: list[Point] | list[list[Point]] | None = None
    cells: list[str] | None = None
    active_hours: tuple[int, int] = (0, 24)  # local hours [start, end); (0, 24) = always

    @model_validator(mode="after")
    def _one_shape(self) -> FenceZone:
        if (self.polygon is None) == (self.cells is None):
            raise located((), "a fence zone has either a polygon or cells, not both and not neither")
        if self.polygon is not None:
            problem = DetectorZone.polygon_problem(self.polygon)
            if problem:
                raise located(("polygon",), problem)
        return self

    def zone(self) -> DetectorZone:
        """This zone as the fence rules see it."""
        return DetectorZone(self.id, tuple(self.site_ids), polygon=tuple(map(tuple, self.polygon)) if self.polygon else None,
                            cells=frozenset(self.cells or ()), active_hours=tuple(self.active_hours))


class FencesFile(Section):
    carriers: list[str] = Field(min_length=1)
    zones: list[FenceZone]
    # Key persons and vehicles, as pseudonyms made with the same key (`shaftwatch
    # watchlist hash`): one per line, in a file kept outside the repository.
    watchlist_file: str | None = None

    @model_validator(mode="after")
    def _unique_ids(self) -> FencesFile:
        unique_ids(self.zones, "zones")
        return self
