"""Electronic-fence analysis: pure rules over pseudonymous device pings.

Two kinds of state, both plain JSON-able dicts so Faust tables can hold them:

- per device (``observe_ping``): the device's open visits to zones, and the days it came.
  A visit counts only after a stay: fixes at most ``max_fix_gap_s`` apart for ``dwell_s``,
  near one spot and slow (GPS and cell positions jump; a phone on the road that crosses a
  zone, a walker, a car, is not a visit). Counted visits produce ``PresenceEvent``s and
  findings: ``zone_entry`` (night weighs more), ``watchlist_hit`` and ``frequent_visitor``
  (the same device in one zone on many days, night visits counting more than day ones).
  Devices on a zone's allow-list (``AllowList``: residents, guards, utility staff, the
  patrol's own phones, each until a date) raise nothing there.
- per zone (``observe_presence``): who is present now; several distinct devices at once
  is a ``crew_in_zone``.

Zones are lon/lat polygons (one outer ring; holes and rings across the antimeridian are
refused by ``Zone.polygon_problem``) or sets of carrier cell ids, each tied to sites.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from pydantic import ConfigDict

from detectors.geometry import bounding_box, metres_between, point_in_polygon
from detectors.timeofday import LocalClock

State = dict[str, Any]


@dataclass(frozen=True)
class FenceRules:
    """Thresholds for the fence rules (configs/thresholds.yaml, section ``fence``)."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    dwell_s: float = 300.0  # presence must last this long before a visit counts...
    stay_radius_m: float = 300.0  # ...near one spot (when positions are known): passers-by move on...
    # ...moving slower than this on average from where the stay began (beyond the fix's own
    # accuracy, at least stay_jitter_m): a walker at 1 m/s or a vehicle passing through never stays
    stay_max_speed_mps: float = 0.3
    stay_jitter_m: float = 50.0
    max_fix_gap_s: float = 600.0  # a stay needs consecutive fixes at most this far apart
    exit_grace_s: float = 1200.0  # a counted visit: no ping for this long and the device has left
    max_accuracy_m: float = 1000.0  # positions less precise than this are not placed in polygons
    crew_min_devices: int = 3  # distinct devices present at once
    visitor_min_days: int = 3  # counted visits on this many distinct days...
    visitor_window_days: int = 14  # ...within this many days, where a day counts by the hour of its visit:
    visitor_day_weight: float = 0.25  # a visit only by day (outside the night hours) counts as a quarter day
    base_strength: float = 0.3  # one device dwelling in a forbidden zone
    night_factor: float = 1.6  # night entries weigh more
    vehicle_bonus: float = 0.1  # a vehicle terminal: ore leaves by vehicle
    watchlist_strength: float = 0.9
    repeat_every_s: float = 1800.0  # while present, refresh presence this often

    def __post_init__(self) -> None:
        if self.crew_min_devices < 2:
            raise ValueError("crew_min_devices must be at least 2")
        if self.dwell_s < 0 or self.exit_grace_s <= 0:
            raise ValueError("dwell_s must be >= 0 and exit_grace_s > 0")
        if not 0 < self.max_fix_gap_s <= self.exit_grace_s:
            raise ValueError("max_fix_gap_s must be > 0 and at most exit_grace_s")
        if not 0 <= self.visitor_day_weight <= 1:
            raise ValueError("visitor_day_weight must be between 0 and 1")


@dataclass(frozen=True)
class Zone:
    id: str
    site_ids: tuple[str, ...]
    polygon: tuple[tuple[float, float], ...] | None = None  # (lon, lat)
    cells: frozenset[str] = frozenset()
    active_hours: tuple[int, int] = (0, 24)

    @staticmethod
    def polygon_problem(polygon) -> str | None:
        """Why a lon/lat polygon cannot be used, or None. Holes come as nested rings."""
        if any(isinstance(p[0], (list, tuple)) for p in polygon):
            return "polygons with holes (nested rings) are not supported; split the zone into simple polygons"
        if len(polygon) < 3:
            return "a polygon needs at least 3 points"
        lons = [p[0] for p in polygon]
        if max(lons) - min(lons) > 180:
            return "the polygon crosses the antimeridian (180°), which is not supported; split it there"
        area2 = sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(polygon, polygon[1:] + polygon[:1]))
        if abs(area2) < 1e-12:
            return "the polygon has no area (all points on a line)"
        return None

    def active(self, hour: int) -> bool:
        start, end = self.active_hours
        if (start, end) == (0, 24):
            return True
        return start <= hour < end if start < end else hour >= start or hour < end


@dataclass(frozen=True)
class Ping:
    device_pid: str
    device_kind: str
    ts: float
    lon: float | None = None
    lat: float | None = None
    accuracy_m: float | None = None
    cell_id: str | None = None
    zone_id: str | None = None
    event: str | None = None  # enter, exit, present


@dataclass(frozen=True)
class Allowed:
    """A device allowed in a zone (a resident, a guard, utility staff, the patrol's own
    phones): its pseudonym, who allowed it, why, and the last local day it holds."""

    zone_id: str
    device_pid: str
    role: str
    added_by: str
    why: str
    until_day: int  # LocalClock.day_number of the last day it holds


class AllowList:
    """Which devices raise nothing in which zone, judged by each ping's own time."""

    def __init__(self, entries: list[Allowed] = ()):
        self.until: dict[tuple[str, str], int] = {}
        for e in entries:
            key = (e.zone_id, e.device_pid)
            self.until[key] = max(self.until.get(key, e.until_day), e.until_day)

    def allows(self, zone_id: str, device_pid: str, ts: float, clock: LocalClock) -> bool:
        until = self.until.get((zone_id, device_pid))
        return until is not None and clock.day_number(ts) <= until

    def __len__(self) -> int:
        return len(self.until)


NOBODY = AllowList()


class ZoneIndex:
    """Which zones a ping is in: cells by look-up, polygons by bounding box then ring test."""

    def __init__(self, zones: list[Zone]):
        self.zones = {z.id: z for z in zones}
        self.by_cell: dict[str, list[str]] = {}
        self.boxes = []
        for z in zones:
            for cell in z.cells:
                self.by_cell.setdefault(cell, []).append(z.id)
            if z.polygon:
                problem = Zone.polygon_problem(list(z.polygon))
                if problem:
                    raise ValueError(f"zone {z.id}: {problem}")
                self.boxes.append((bounding_box(z.polygon), z))

    def locate(self, ping: Ping, rules: FenceRules) -> list[str]:
        if ping.zone_id is not None:
            return [ping.zone_id] if ping.zone_id in self.zones else []
        if ping.cell_id is not None:
            return list(self.by_cell.get(ping.cell_id, ()))
        if ping.lon is None or ping.lat is None:
            return []
        if ping.accuracy_m is not None and ping.accuracy_m > rules.max_accuracy_m:
            return []
        found = []
        for (x0, y0, x1, y1), zone in self.boxes:
            if x0 <= ping.lon <= x1 and y0 <= ping.lat <= y1 and point_in_polygon(ping.lon, ping.lat, zone.polygon):
                found.append(zone.id)
        return found


@dataclass
class FenceFinding:
    kind: str  # zone_entry, watchlist_hit, frequent_visitor, crew_in_zone
    zone_id: str
    ts: float
    strength: float
    summary: str
    devices: list[str]
    episode_start: float
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class PresenceEvent:
    """A counted presence of one device in one zone, sent on to the zone's state."""

    zone_id: str
    device_pid: str
    device_kind: str
    since: float
    ts: float
    left: bool = False
    lon: float | None = None  # where the device stays, when positions are known
    lat: float | None = None


def _position(visit: dict) -> dict:
    anchor = visit.get("anchor")
    return {"lon": anchor[0], "lat": anchor[1]} if anchor else {}


def _moving(anchor, since: float, ping: Ping, rules: FenceRules) -> bool:
    """Has the device left the spot where its stay began: further than the stay radius, or
    further than its fixes' accuracy plus a slow walk (stay_max_speed_mps) would take it."""
    distance = metres_between(anchor, (ping.lon, ping.lat))
    allowance = max(ping.accuracy_m or 0.0, rules.stay_jitter_m) + rules.stay_max_speed_mps * (ping.ts - since)
    return distance > rules.stay_radius_m or distance > allowance


def new_device_state() -> State:
    return {"visits": {}, "days": {}, "kind": None}


def new_zone_state() -> State:
    return {"present": {}, "crew": None}


def _strength(base: float, night: bool, kind: str, rules: FenceRules) -> float:
    s = base * (rules.night_factor if night else 1.0) + (rules.vehicle_bonus if kind == "vehicle_terminal" else 0.0)
    return round(min(1.0, s), 3)


def _day(ts: float, clock: LocalClock) -> int:
    return clock.day_number(ts)


def observe_ping(state: State, ping: Ping, zones_hit: list[str], index: ZoneIndex, rules: FenceRules,
                 clock: LocalClock, watchlist: frozenset[str] = frozenset(),
                 allowed: AllowList = NOBODY) -> tuple[list[FenceFinding], list[PresenceEvent]]:
    findings: list[FenceFinding] = []
    events: list[PresenceEvent] = []
    visits: dict[str, dict] = state["visits"]
    state["kind"] = ping.device_kind
    hour = clock.hour(ping.ts)
    night = clock.is_night(ping.ts)
    # An allow-listed device is not in that zone as far as the rules go: no visit, no
    # presence, no crew, nothing (its open visit there, if any, ends as a departure).
    hit = [z for z in zones_hit if index.zones[z].active(hour) and not allowed.allows(z, ping.device_pid, ping.ts, clock)]

    # Leaving: an exit event, or a position/cell that is no longer in a zone with a visit.
    for zone_id in list(visits):
        visit = visits[zone_id]
        stale = ping.ts - visit["last"] > rules.exit_grace_s
        left = zone_id not in hit or (ping.event == "exit" and zone_id in zones_hit)
        if stale or left:
            if visit["counted"]:
                events.append(PresenceEvent(zone_id, ping.device_pid, ping.device_kind, visit["first"], ping.ts, left=True))
            del visits[zone_id]
    if ping.event == "exit":
        return findings, events

    for zone_id in hit:
        visit = visits.get(zone_id)
        if visit is None:
            visit = visits[zone_id] = {"first": ping.ts, "last": ping.ts, "counted": False, "refreshed": None,
                                       "anchor": None}
        if not visit["counted"] and ping.ts - visit["last"] > rules.max_fix_gap_s:
            # A stay needs fixes close in time: what the device did in a long gap is unknown.
            visit["first"] = ping.ts
            visit["anchor"] = None
        if ping.lon is not None and ping.lat is not None:
            anchor = visit["anchor"]
            if anchor is None or (not visit["counted"] and _moving(anchor, visit["first"], ping, rules)):
                # Moving through: the dwell clock starts again where the device is now.
                visit["anchor"] = [ping.lon, ping.lat]
                visit["first"] = ping.ts
        visit["last"] = max(visit["last"], ping.ts)
        dwell = visit["last"] - visit["first"]
        if not visit["counted"] and dwell >= rules.dwell_s:
            visit["counted"] = True
            visit["refreshed"] = ping.ts
            events.append(PresenceEvent(zone_id, ping.device_pid, ping.device_kind, visit["first"], ping.ts,
                                        **_position(visit)))
            findings += _on_counted_visit(state, ping, zone_id, visit, night, rules, clock, watchlist)
        elif visit["counted"] and ping.ts - visit["refreshed"] >= rules.repeat_every_s:
            visit["refreshed"] = ping.ts
            events.append(PresenceEvent(zone_id, ping.device_pid, ping.device_kind, visit["first"], ping.ts,
                                        **_position(visit)))
    return findings, events


def _on_counted_visit(state, ping: Ping, zone_id: str, visit: dict, night: bool, rules: FenceRules,
                      clock: LocalClock, watchlist: frozenset[str]) -> list[FenceFinding]:
    out = []
    dwell_min = (visit["last"] - visit["first"]) / 60
    who = "a vehicle terminal" if ping.device_kind == "vehicle_terminal" else "a phone"
    when = "at night" if night else "by day"
    out.append(FenceFinding("zone_entry", zone_id, ping.ts, _strength(rules.base_strength, night, ping.device_kind, rules),
                       f"{who} entered forbidden zone {zone_id} {when} and stayed {dwell_min:.0f} min",
                       [ping.device_pid], visit["first"], {"night": night, "dwell_s": visit["last"] - visit["first"],
                                                           "device_kind": ping.device_kind}))
    if ping.device_pid in watchlist:
        out.append(FenceFinding("watchlist_hit", zone_id, ping.ts, rules.watchlist_strength,
                           f"a watchlisted {'vehicle' if ping.device_kind == 'vehicle_terminal' else 'person'} "
                           f"is in forbidden zone {zone_id} {when}", [ping.device_pid], visit["first"],
                           {"night": night, "device_kind": ping.device_kind}))
    # The days it came, each weighted by the hour of its visits: a night visit counts a
    # whole day, one only by day (a villager going about the day) visitor_day_weight.
    days = state["days"].setdefault(zone_id, [])
    today = _day(ping.ts, clock)
    weight = 1.0 if night else rules.visitor_day_weight
    before = {d: w for d, w in (x if isinstance(x, list) else [x, 1.0] for x in days)}
    if before.get(today, 0.0) < weight:
        before[today] = weight
        kept = {d: w for d, w in before.items() if d > today - rules.visitor_window_days}
        days[:] = [[d, w] for d, w in sorted(kept.items())]
        weighted = sum(kept.values())
        if weighted >= rules.visitor_min_days:
            out.append(FenceFinding("frequent_visitor", zone_id, ping.ts,
                               _strength(0.3 + 0.1 * (weighted - rules.visitor_min_days), night, ping.device_kind, rules),
                               f"{who} came into zone {zone_id} on {len(kept)} days in the last "
                               f"{rules.visitor_window_days} days ({sum(w == 1.0 for w in kept.values())} of them "
                               "at night)", [ping.device_pid], min(kept) * 86400.0,
                               {"days": len(kept), "weighted_days": round(weighted, 2),
                                "device_kind": ping.device_kind}))
    return out


def observe_presence(state: State, event: PresenceEvent, rules: FenceRules, clock: LocalClock) -> list[FenceFinding]:
    """Who is in a zone now; a crew when enough distinct devices are present at once."""
    present: dict[str, dict] = state["present"]
    if event.left:
        present.pop(event.device_pid, None)
    else:
        present[event.device_pid] = {"since": event.since, "last": event.ts, "kind": event.device_kind,
                                     "pos": [event.lon, event.lat] if event.lon is not None else None}
    for pid in [p for p, v in present.items() if event.ts - v["last"] > rules.exit_grace_s + rules.repeat_every_s]:
        del present[pid]
    crew = state.get("crew")
    n = len(present)
    if n < rules.crew_min_devices:
        if n == 0:
            state["crew"] = None
        return []
    if crew is not None and n <= crew["size"]:
        return []
    start = crew["start"] if crew else max(v["since"] for v in present.values())
    state["crew"] = {"start": start, "size": n}
    night = clock.is_night(event.ts)
    vehicles = sum(v["kind"] == "vehicle_terminal" for v in present.values())
    strength = min(1.0, (0.5 + 0.1 * (n - rules.crew_min_devices) + (rules.vehicle_bonus if vehicles else 0.0))
                   * (rules.night_factor if night else 1.0))
    longest = max(event.ts - v["since"] for v in present.values()) / 60
    positions = [v["pos"] for v in present.values() if v.get("pos")]
    centre = [sum(p[0] for p in positions) / len(positions), sum(p[1] for p in positions) / len(positions)] \
        if positions else None
    return [FenceFinding("crew_in_zone", event.zone_id, event.ts, round(strength, 3),
                    f"{n} devices together in forbidden zone {event.zone_id} {'at night' if night else 'by day'}"
                    f" ({vehicles} vehicle terminal(s)); the first came {longest:.0f} min ago",
                    sorted(present), start, {"devices": n, "vehicles": vehicles, "night": night, "centre": centre})]


def nearest_site(lon: float | None, lat: float | None, site_ids: tuple[str, ...],
                 sites: dict[str, tuple[float, float]]) -> list[str]:
    """The zone's site nearest to a position; all of the zone's sites when there is none."""
    if lon is None or lat is None:
        return list(site_ids)
    known = [s for s in site_ids if s in sites]
    if not known:
        return list(site_ids)
    return [min(known, key=lambda s: math.hypot((sites[s][0] - lon) * math.cos(math.radians(lat)),
                                                sites[s][1] - lat))]
