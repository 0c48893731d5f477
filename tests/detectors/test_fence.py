"""Fence rules on seeded movement: the crew and the returning vehicle are flagged, passers-by are not."""

from __future__ import annotations

import random

import pytest

from detectors.fence import (
    Allowed, AllowList, FenceRules, Ping, Zone, ZoneIndex, nearest_site, new_device_state, new_zone_state,
    observe_ping, observe_presence,
)
from detectors.timeofday import LocalClock
from tests.sim.fence import ZONE, crew, local, passers, returning_vehicle

RULES = FenceRules()
CLOCK = LocalClock()
INDEX = ZoneIndex([
    Zone("FZ-1", ("S01", "S02"), polygon=ZONE),
    Zone("FZ-C", ("S07",), cells=frozenset({"460-00-1-1"}), active_hours=(18, 7)),
])


def run(pings: list[Ping], watchlist=frozenset(), allowed=AllowList(), rules=RULES):
    devices, zones, findings = {}, {}, []
    for ping in sorted(pings, key=lambda p: p.ts):
        state = devices.setdefault(ping.device_pid, new_device_state())
        found, events = observe_ping(state, ping, INDEX.locate(ping, rules), INDEX, rules, CLOCK, watchlist, allowed)
        findings += found
        for event in events:
            findings += observe_presence(zones.setdefault(event.zone_id, new_zone_state()), event, RULES, CLOCK)
    return findings


def test_passers_by_are_not_flagged():
    rng = random.Random(1)
    assert run(passers(rng, days=14, per_day=40)) == []


def test_night_crew_and_returning_vehicle_are_flagged_among_passers():
    rng = random.Random(2)
    pings = passers(rng, days=7, per_day=40) + crew(rng, day=5) + returning_vehicle(rng, nights=4, first_day=2)
    findings = run(pings)
    kinds = [f.kind for f in findings]
    crews = [f for f in findings if f.kind == "crew_in_zone"]
    assert crews, kinds
    assert crews[0].details["night"] and crews[0].strength >= 0.8
    assert set(crews[-1].devices) >= {"p1:crew0", "p1:crew1", "p1:crew2"}
    lon, lat = crews[0].details["centre"]  # where they work: the shaft mouth of S01
    assert abs(lon - 110.4127) < 0.002 and abs(lat - 34.4311) < 0.002
    frequent = [f for f in findings if f.kind == "frequent_visitor"]
    assert [f.devices for f in frequent] == [["p1:truck"], ["p1:truck"]]  # 3rd and 4th night
    entries = [f for f in findings if f.kind == "zone_entry"]
    assert {d for f in entries for d in f.devices} == {"p1:crew0", "p1:crew1", "p1:crew2", "p1:crew3", "p1:truck"}
    night_truck = next(f for f in entries if f.devices == ["p1:truck"])
    assert night_truck.strength == pytest.approx(min(1.0, 0.3 * 1.6 + 0.1))


def test_watchlist_hit():
    rng = random.Random(3)
    findings = run(returning_vehicle(rng, nights=1), watchlist=frozenset({"p1:truck"}))
    assert [f.kind for f in findings] == ["zone_entry", "watchlist_hit"]
    assert findings[1].strength == 0.9


def test_a_single_jump_into_the_zone_is_not_a_visit():
    t = local(3, 2)
    pings = [Ping("p1:x", "phone", t, 110.40, 34.43, 100), Ping("p1:x", "phone", t + 600, 110.42, 34.43, 900),
             Ping("p1:x", "phone", t + 1200, 110.40, 34.43, 100)]
    assert run(pings) == []


def test_cells_active_hours_and_exit_events():
    day = local(4, 0)
    at_night = [Ping("p1:c", "phone", day + 22 * 3600 + i * 200, cell_id="460-00-1-1") for i in range(3)]
    found = run(at_night)
    assert [f.kind for f in found] == ["zone_entry"] and found[0].zone_id == "FZ-C"
    by_day = [Ping("p1:d", "phone", day + 12 * 3600 + i * 200, cell_id="460-00-1-1") for i in range(5)]
    assert run(by_day) == []  # the zone is active 18-7 h only
    exits = [Ping("p1:e", "phone", day + 23 * 3600, cell_id="460-00-1-1", event="enter"),
             Ping("p1:e", "phone", day + 23 * 3600 + 100, cell_id="460-00-1-1", event="exit"),
             Ping("p1:e", "phone", day + 23 * 3600 + 400, cell_id="460-00-1-1", event="enter")]
    assert run(exits) == []  # left before the dwell time; the new entry starts over


@pytest.mark.parametrize("lon, lat, accuracy, inside", [
    (110.405, 34.43, 50, True),     # on the west edge
    (110.437, 34.446, 50, True),    # on a corner
    (110.4049, 34.43, 50, False),
    (110.42, 34.43, 5000, False),   # too imprecise to place
])
def test_polygon_edges_and_accuracy(lon, lat, accuracy, inside):
    ping = Ping("p1:z", "phone", local(1, 1), lon, lat, accuracy)
    assert (INDEX.locate(ping, RULES) == ["FZ-1"]) is inside


@pytest.mark.parametrize("polygon, problem", [
    ([(179.5, 10), (-179.5, 10), (-179.5, 11), (179.5, 11)], "antimeridian"),
    ([[(0, 0), (1, 0), (1, 1)], [(0.2, 0.2), (0.4, 0.2), (0.4, 0.4)]], "holes"),
    ([(0, 0), (1, 1), (2, 2)], "no area"),
])
def test_unsupported_polygons_are_refused_clearly(polygon, problem):
    assert problem in Zone.polygon_problem(polygon)
    if problem != "holes":
        with pytest.raises(ValueError, match=problem):
            ZoneIndex([Zone("BAD", ("S01",), polygon=tuple(polygon))])


def test_nearest_site():
    sites = {"S01": (110.4127, 34.4311), "S02": (110.4172, 34.4288)}
    assert nearest_site(110.4125, 34.4310, ("S01", "S02"), sites) == ["S01"]
    assert nearest_site(None, None, ("S01", "S02"), sites) == ["S01", "S02"]


# --------------------------------------------------------------------------- stays, allow-list, time of day


def still(pid: str, start: float, minutes: int, every_s: float = 120.0, lon=110.4127, lat=34.4311, kind="phone"):
    """A device that stays at one spot, a fix every ``every_s`` with 30 m of jitter."""
    rng = random.Random(pid)
    return [Ping(pid, kind, start + k * every_s, lon + rng.uniform(-0.0003, 0.0003), lat + rng.uniform(-0.0003, 0.0003),
                 30) for k in range(int(minutes * 60 / every_s) + 1)]


def test_allow_listed_devices_raise_nothing_until_their_entry_ends():
    resident = [p for night in range(1, 8) for p in still("p1:home", local(night, 22), 120)]
    crew = [p for k in range(2) for p in still(f"p1:crew{k}", local(3, 23), 60)]
    entry = Allowed("FZ-1", "p1:home", "resident", "王建国", "lives at 12号", CLOCK.day_number(local(5, 12)))
    allowed = AllowList([entry])
    found = run(resident + crew, allowed=allowed)
    # Nothing of the resident while its entry holds: no entry, no frequent visitor, and it is
    # not the third device of a crew (two strangers stay two).
    assert all("p1:home" not in f.devices for f in found if f.ts < local(6, 0)), found
    assert not [f for f in found if f.kind == "crew_in_zone"]
    # From the day after its last day, the device counts again.
    assert [f.kind for f in found if "p1:home" in f.devices][:1] == ["zone_entry"]
    assert all(f.ts >= local(6, 0) for f in found if "p1:home" in f.devices)
    # Without the list, the resident is a frequent visitor by the third night.
    frequent = [f for f in run(resident) if f.kind == "frequent_visitor"]
    assert frequent and frequent[0].strength >= 0.48


def test_a_stay_needs_fixes_close_in_time():
    """Two fixes 18 minutes apart on a road are not an 18-minute stay (issue 12)."""
    t = local(3, 14)
    gap = [Ping("p1:g", "phone", t, 110.4127, 34.4311, 50), Ping("p1:g", "phone", t + 1080, 110.4138, 34.4311, 50)]
    assert run(gap) == []
    close = [Ping("p1:g", "phone", t + k * 300, 110.4127, 34.4311, 50) for k in range(3)]
    assert [f.kind for f in run(close)] == ["zone_entry"]


@pytest.mark.parametrize("speed_mps", [1.0, 1.4, 5.0, 15.0])
def test_walkers_and_vehicles_passing_through_do_not_stay(speed_mps):
    """A fix every 30 s along a line through the zone at walking, cycling or driving speed:
    not a visit, however long it takes to cross (a walker at 1 m/s takes 10 minutes)."""
    t = local(3, 23)
    step_deg = speed_mps * 30 / (111_320 * 0.825)  # metres -> degrees of longitude at 34.4 N
    pings, lon = [], 110.400
    while lon < 110.445:
        pings.append(Ping("p1:w", "phone", t, lon, 34.435, 20))
        lon += step_deg
        t += 30
    assert run(pings) == []


def test_a_slow_stay_with_gps_jitter_still_counts():
    found = run(still("p1:s", local(3, 23), 12, every_s=60))
    assert [f.kind for f in found] == ["zone_entry"] and found[0].details["night"]


def test_frequent_visitor_weighs_night_visits_over_day_visits():
    by_day = [p for d in range(1, 8) for p in still("p1:farmer", local(d, 10), 30)]
    assert [f for f in run(by_day) if f.kind == "frequent_visitor"] == []  # 7 day visits weigh 1.75 days
    by_night = [p for d in range(1, 4) for p in still("p1:night", local(d, 1), 30)]
    frequent = [f for f in run(by_night) if f.kind == "frequent_visitor"]
    assert len(frequent) == 1 and frequent[0].details["weighted_days"] == 3.0 and frequent[0].strength >= 0.48
