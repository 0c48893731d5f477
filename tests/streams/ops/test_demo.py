"""Demo feeds: realistic generators, and the feeders produce through the contract."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys

import pytest

from streams.config import load_config
from streams.contract.decoding import decode
from streams.contract.frames import FrameMeta, check_jpeg
from streams.contract.records import FencePing, MeterReading
from streams.ops.demo import DemoClock, meter_power_kw
from tests.helpers import REPO, isolated_config, read_all

CFG = load_config(REPO / "configs")
TZ = CFG.thresholds.timezone_offset_h
CLOCK = CFG.thresholds.clock()


def at_local(year, month, day, hour) -> float:
    return CLOCK.epoch(year, month, day, hour)


def test_cut_off_mine_lines_read_zero():
    rng = random.Random(1)
    for meter in (m for m in CFG.meters.meters if m.expected_zero):
        assert meter_power_kw(meter, at_local(2026, 7, 1, 2), CLOCK, rng) == 0.0


def test_irrigation_follows_season_and_hours():
    rng = random.Random(1)
    pump = next(m for m in CFG.meters.meters if m.kind == "irrigation" and 7 in m.irrigation.months
                and 12 not in m.irrigation.months)
    summer_noon = [meter_power_kw(pump, at_local(2026, 7, d, 12), CLOCK, rng) for d in range(1, 29)]
    winter_noon = [meter_power_kw(pump, at_local(2026, 12, d, 12), CLOCK, rng) for d in range(1, 29)]
    summer_night = [meter_power_kw(pump, at_local(2026, 7, d, 2), CLOCK, rng) for d in range(1, 29)]
    assert max(winter_noon) < 0.1 and max(summer_night) < 0.1
    assert sum(kw > pump.irrigation.pump_kw * 0.8 for kw in summer_noon) >= 8


def test_night_clock_reads_half_past_one_local():
    clock = DemoClock.night(CLOCK)
    assert abs(CLOCK.hour_of_day(clock.now()) - 1.5) < 0.01
    assert clock.offset_s <= 0


@pytest.mark.broker
def test_feeders_produce_valid_records_even_without_footage(kafka_bootstrap, tmp_path):
    config_dir = isolated_config(tmp_path, "demo", demo={"footage_dir": str(tmp_path / "no-footage"),
                                                         "meter_history_days": 1})
    cfg = load_config(config_dir)
    env = {"SHAFTWATCH_CONFIG_DIR": str(config_dir), "KAFKA_BOOTSTRAP": kafka_bootstrap,
           "SHAFTWATCH_PSEUDONYM_KEY": "test-key", "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-m", "streams.ops.cli", "topics"], env=env, cwd=REPO, check=True,
                   capture_output=True)
    procs = {feed: subprocess.Popen([sys.executable, "-m", "streams.ops.cli", "demo", feed, "--duration", "6",
                                     "--theft-site", "S03", "--theft-after", "1"],
                                    env=env, cwd=REPO, stderr=subprocess.PIPE, text=True)
             for feed in ("cameras", "meters", "fences")}
    errors = {feed: p.communicate(timeout=60)[1] for feed, p in procs.items()}
    assert all(p.returncode == 0 for p in procs.values()), errors
    assert "demo footage not found" in errors["cameras"]

    frames = asyncio.run(read_all(kafka_bootstrap, cfg.topic("frames"), expect=12))
    assert len(frames) >= 12
    for record in frames:
        meta = FrameMeta.from_headers(record.headers)
        check_jpeg(record.value)
        assert record.key.decode() == meta.camera_id

    expected = len(cfg.meters.meters) * 96
    readings = [decode(MeterReading, r.value) for r in asyncio.run(read_all(kafka_bootstrap, cfg.topic("meter-readings"),
                                                                           expect=expected + 1))]
    assert len(readings) >= expected
    stolen = [r for r in readings if r.meter_id == "M-0003" and r.power_kw and r.power_kw > 20]
    assert stolen, "the staged theft drew power on S03's cut-off mine line"

    pings = [decode(FencePing, r.value) for r in asyncio.run(read_all(kafka_bootstrap, cfg.topic("fence-pings"),
                                                                     expect=5))]
    crew = {p.device_pid for p in pings if p.event in ("enter", "present")}
    assert len(crew) >= 5 and all(pid.startswith("p1:") for pid in crew)
    # night-time: the demo clock puts the theft at about 01:30 local
    assert all(0.9 < CLOCK.hour_of_day(p.ts) < 2.0 for p in pings)
