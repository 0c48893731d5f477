"""Seeded movement in and around a fence zone: passers-by, a night crew, a returning vehicle."""

from __future__ import annotations

import random

from detectors.fence import Ping
from detectors.timeofday import LocalClock

ZONE = ((110.405, 34.424), (110.437, 34.424), (110.437, 34.446), (110.405, 34.446))
ROAD_LAT = 34.435  # a village road crosses the zone from west to east


def local(day: int, hour: float) -> float:
    return LocalClock().epoch(2026, 11, day, hour)


def passers(rng: random.Random, days: int, per_day: int) -> list[Ping]:
    """Villagers walking or riding through on the road: 1-3 pings inside, a few minutes."""
    out = []
    for day in range(1, days + 1):
        for n in range(per_day):
            pid = f"p1:villager{rng.randrange(300):04d}"
            t = local(day, rng.uniform(6, 22))
            speed_deg_per_s = rng.uniform(0.00005, 0.0002)  # 5-20 m/s
            lon = 110.40
            while lon < 110.445:
                out.append(Ping(pid, "phone", t, lon, ROAD_LAT + rng.uniform(-0.0005, 0.0005), rng.uniform(30, 200)))
                lon += speed_deg_per_s * 60
                t += 60
    return out


def crew(rng: random.Random, day: int, size: int = 4, hours: float = 3.0) -> list[Ping]:
    """A crew arrives at 23:00 and works at the shaft mouth for hours."""
    out = []
    for k in range(size):
        pid = f"p1:crew{k}"
        t = local(day, 23 + rng.uniform(0, 0.2))
        end = t + hours * 3600
        while t < end:
            out.append(Ping(pid, "phone", t, 110.4127 + rng.uniform(-0.001, 0.001), 34.4311 + rng.uniform(-0.001, 0.001),
                            rng.uniform(20, 150)))
            t += rng.uniform(240, 360)
    return out


def returning_vehicle(rng: random.Random, nights: int, first_day: int = 1) -> list[Ping]:
    """A truck that comes into the zone every night for half an hour."""
    out = []
    for night in range(nights):
        t = local(first_day + night, 1 + rng.uniform(0, 1))
        for i in range(8):
            out.append(Ping("p1:truck", "vehicle_terminal", t + i * 240, 110.42, 34.43, 50))
    return out
