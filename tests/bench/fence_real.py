"""The fence rules on REAL movement (tests/bench/real_data.py) and on residents generated from
stated assumptions. Part of `make bench-fence`; alone: `python -m tests.bench.fence_real`.

Passers-by (real GPS tracks: a 1 Hz road ride, a car drive, a walk/ride around a lake):
each track is laid in the demo county's time zone at several start hours, and a zone of
600 m x 600 m (a shaft's protection area, ~300 m around it) is centred on the track's own
path at 20, 40, 60 and 80 % of its length (the track crosses the zone), plus an empty zone
2 km away from the whole track. Carriers do not report every second: each track is also
thinned to one fix every 30, 60 and 300 s, with the accuracy the carrier would give.

Residents (GENERATED, not real: no registry package ships people's daily traces, see
tests/bench/real_data.py): a home 150 m from a shaft, inside its zone; on working days
the resident leaves between 07:00 and 08:30 and comes back between 17:00 and 19:30 (a day
of about 9-11 hours away, as time-use surveys report for employed people), on one day in
five stays home all day, on weekends goes out for 2-4 hours around midday; the phone is
located every 5-20 minutes (network positioning, accuracy 50-300 m, the fix scattered
within it). 30 residents for 28 days. Counted: zone entries and other findings per
resident-day, without and with the residents on the zone's allow-list.
"""

from __future__ import annotations

import math
import random
import statistics
from collections import Counter

from detectors.fence import (
    Allowed, AllowList, FenceRules, Ping, Zone, ZoneIndex, new_device_state, new_zone_state, observe_ping,
    observe_presence,
)
from detectors.geometry import metres_between
from detectors.timeofday import LocalClock
from tests.bench.real_data import Track, tracks

CLOCK = LocalClock()
RULES = FenceRules()
HALF_M = 300.0


def square(lon: float, lat: float, half_m: float = HALF_M) -> tuple[tuple[float, float], ...]:
    dlat = half_m / 111_320
    dlon = half_m / (111_320 * math.cos(math.radians(lat)))
    return ((lon - dlon, lat - dlat), (lon + dlon, lat - dlat), (lon + dlon, lat + dlat), (lon - dlon, lat + dlat))


def run(pings: list[Ping], index: ZoneIndex, allowed: AllowList = AllowList()) -> list:
    devices, zones, findings = {}, {}, []
    for ping in sorted(pings, key=lambda p: p.ts):
        state = devices.setdefault(ping.device_pid, new_device_state())
        found, events = observe_ping(state, ping, index.locate(ping, RULES), index, RULES, CLOCK, allowed=allowed)
        findings += found
        for event in events:
            findings += observe_presence(zones.setdefault(event.zone_id, new_zone_state()), event, RULES, CLOCK)
    return findings


def thinned(track: Track, every_s: float, rng: random.Random) -> list[tuple[float, float, float, float]]:
    """(t, lon, lat, accuracy): one fix every ``every_s`` (0: every point), scattered within
    the accuracy a carrier gives at that cadence (GPS for dense fixes, network for sparse)."""
    out, next_t = [], 0.0
    for t, lon, lat in track.points:
        if t < next_t:
            continue
        accuracy = rng.uniform(10, 30) if every_s <= 60 else rng.uniform(50, 300)
        r, a = accuracy * math.sqrt(rng.random()) / 2, rng.uniform(0, 2 * math.pi)
        out.append((t, lon + r * math.cos(a) / (111_320 * math.cos(math.radians(lat))), lat + r * math.sin(a) / 111_320,
                    accuracy))
        next_t = t + every_s
    return out


STOP_S, STOP_M = 300.0, 100.0


def stopped_in(track: Track, zone_id: str, index: ZoneIndex) -> bool:
    """Did the track stay STOP_S within STOP_M of one of its points inside the zone?"""
    pts = track.points
    inside = [zone_id in index.locate(Ping("x", "phone", 0, lon, lat, 10), RULES) for _, lon, lat in pts]
    for i, (t0, lon0, lat0) in enumerate(pts):
        if not inside[i]:
            continue
        for j in range(i + 1, len(pts)):
            t, lon, lat = pts[j]
            if metres_between((lon0, lat0), (lon, lat)) > STOP_M or not inside[j]:
                break
            if t - t0 >= STOP_S:
                return True
    return False


def passers_by(seed: int = 3) -> dict:
    rng = random.Random(seed)
    report = {}
    for track in tracks():
        lons, lats = [p[1] for p in track.points], [p[2] for p in track.points]
        zones = []
        for k, share in enumerate((0.2, 0.4, 0.6, 0.8)):
            _, lon, lat = track.points[int(share * (len(track.points) - 1))]
            zones.append(Zone(f"ROAD-{k}", ("S01",), polygon=square(lon, lat)))
        far_lat = max(lats) + 2000 / 111_320
        zones.append(Zone("EMPTY", ("S01",), polygon=square(statistics.mean(lons), far_lat)))
        index = ZoneIndex(zones)
        # Whether the person stopped in each zone, by the raw track itself (not the rules):
        # 5 minutes within 100 m of where they stood, inside the zone. Zones on one track may
        # overlap (a walk that loops around a lake passes one spot three times), so a zone's
        # stops are looked for in every point inside it, whichever other zones hold it too.
        stopped = {z.id: stopped_in(track, z.id, index) for z in zones}
        rows = {"passing": Counter(), "stopping": Counter()}
        passes = Counter()
        for every_s in (0, 30, 60, 300):
            for hour in (2.0, 10.0, 14.0, 22.0):
                t0 = CLOCK.epoch(2026, 11, 3, hour)
                pid = f"p1:{track.name}-{every_s}-{hour}"
                pings = [Ping(pid, "vehicle_terminal" if track.mode == "car" else "phone", t0 + t, lon, lat, acc)
                         for t, lon, lat, acc in thinned(track, every_s, rng)]
                for z in zones:
                    passes["stopping" if stopped[z.id] else "passing"] += 1
                for f in run(pings, index):
                    rows["stopping" if stopped[f.zone_id] else "passing"][f.kind] += 1
        report[track.name] = {"mode": track.mode, "source": track.source, "minutes": round(track.duration_s / 60),
                              "zones_stopped": sorted(z for z, v in stopped.items() if v),
                              "passes": dict(passes), "findings": {k: dict(v) for k, v in rows.items()},
                              "findings_per_passing": sum(rows["passing"].values()) / max(1, passes["passing"])}
    return report


def residents(n: int = 30, days: int = 28, seed: int = 5) -> dict:
    rng = random.Random(seed)
    shaft = (110.4127, 34.4311)
    zone = Zone("FZ-HOME", ("S01",), polygon=square(*shaft))
    index = ZoneIndex([zone])
    pings, entries = [], []
    for r in range(n):
        pid = f"p1:resident{r:02d}"
        a = rng.uniform(0, 2 * math.pi)
        home = (shaft[0] + 150 * math.cos(a) / (111_320 * math.cos(math.radians(shaft[1]))),
                shaft[1] + 150 * math.sin(a) / 111_320)
        work = (home[0] + 0.03, home[1] + 0.01)  # ~3 km away, outside the zone
        entries.append(Allowed("FZ-HOME", pid, "resident", "bench", "lives here", CLOCK.day_number(
            CLOCK.epoch(2026, 12, 31, 12))))
        for day in range(days):
            d0 = CLOCK.epoch(2026, 11, 2, 0) + day * 86400  # from a Monday
            weekday = day % 7 < 5
            if weekday and rng.random() > 0.2:
                away = [(rng.uniform(7.0, 8.5), rng.uniform(17.0, 19.5))]
            elif not weekday and rng.random() < 0.7:
                start = rng.uniform(10, 14)
                away = [(start, start + rng.uniform(2, 4))]
            else:
                away = []
            t = d0 + rng.uniform(0, 600)
            while t < d0 + 86400:
                hour = (t - d0) / 3600
                place = work if any(a0 <= hour < a1 for a0, a1 in away) else home
                accuracy = rng.uniform(50, 300)
                rr, aa = accuracy * math.sqrt(rng.random()) / 2, rng.uniform(0, 2 * math.pi)
                pings.append(Ping(pid, "phone", t, place[0] + rr * math.cos(aa) / (111_320 * math.cos(math.radians(place[1]))),
                                  place[1] + rr * math.sin(aa) / 111_320, accuracy))
                t += rng.uniform(300, 1200)
    resident_days = n * days
    without = run(pings, index)
    allowed = run(pings, index, AllowList(entries))
    kinds = Counter(f.kind for f in without)
    night_frequent = [f for f in without if f.kind == "frequent_visitor" and CLOCK.is_night(f.ts)]
    return {"residents": n, "days": days, "resident_days": resident_days,
            "without_allow_list": {"findings": dict(kinds), "entries_per_resident_day": kinds["zone_entry"] / resident_days,
                                   "night_frequent_visitor_max_strength": max((f.strength for f in night_frequent),
                                                                              default=0.0)},
            "with_allow_list": {"findings": len(allowed)}}


def main() -> dict:
    report = {"passers_by": passers_by(), "residents": residents()}
    print("passers-by: REAL GPS tracks crossing a 600 m zone (4 zones on each track's path, 1 empty zone 2 km away);")
    print("each at 4 start hours x fixes every 1 s (raw), 30 s, 60 s, 300 s")
    for name, r in report["passers_by"].items():
        f = r["findings"]
        print(f"  {name:30} {r['mode']:5} {r['minutes']:>4} min: passing through {r['passes'].get('passing', 0):>3} times: "
              f"{f['passing'] or 'nothing'} = {r['findings_per_passing']:.2f} per passer-by; stopping (5 min within 100 m) "
              f"in {len(r['zones_stopped'])} zone(s), {r['passes'].get('stopping', 0)} times: "
              f"{f['stopping'] or 'nothing'}  ({r['source']})")
    res = report["residents"]
    w = res["without_allow_list"]
    print(f"residents (GENERATED from stated assumptions, not real traces): {res['residents']} homes 150 m from a shaft, "
          f"{res['days']} days ({res['resident_days']} resident-days)")
    print(f"  without an allow-list: {w['findings']} = {w['entries_per_resident_day']:.2f} zone entries per resident-day; "
          f"night frequent_visitor strength up to {w['night_frequent_visitor_max_strength']:.2f}")
    print(f"  with the residents allow-listed: {res['with_allow_list']['findings']} findings")
    return report


if __name__ == "__main__":
    main()
