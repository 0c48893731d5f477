"""The record contract: strict decoding with reasons, and the published schemas are current."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from streams.contract.decoding import decode, decode_message, encode
from streams.contract.frames import FrameMeta, check_jpeg
from streams.contract.records import (
    DeadLetter, FencePing, FencePingBatch, FencePresence, FencePresenceBatch, Incident, MeterReading,
    MeterReadingBatch, RecordError, Signal, field_shapes,
)
from streams.contract.schema import json_schema
from tests.helpers import REPO

NOW = time.time()


def reading(**overrides) -> bytes:
    data = {"v": 1, "source_id": "utility-a", "meter_id": "M-0001", "ts": NOW - 900, "energy_kwh": 2.5}
    data.update(overrides)
    return json.dumps(data).encode()


def test_good_reading_round_trips():
    r = decode(MeterReading, reading(power_kw=10.0, register_kwh=1234.5))
    assert (r.meter_id, r.energy_kwh, r.power_kw, r.interval_s) == ("M-0001", 2.5, 10.0, 900)
    assert decode(MeterReading, encode(r)) == r


@pytest.mark.parametrize("raw, reason", [
    (b"", "empty message"),
    (b"\xff\xfe", "not JSON"),
    (b"[1, 2]", "expected a JSON object, got list"),
    (reading(v=2), "schema version v=2 is not supported"),
    (reading(energy_kwh=-1), "energy_kwh is negative (-1)"),
    (reading(energy_kwh=None), "a reading needs energy_kwh or power_kw"),
    (reading(ts="yesterday"), "ts: expected a number, got 'yesterday'"),
    (reading(ts=NOW * 1000), "more than a day in the future"),
    (reading(extra=1), "unknown fields: extra"),
    (reading(power_kw=5e6), "absurd"),
    (json.dumps({"v": 1}).encode(), "missing fields: meter_id, source_id, ts"),
])
def test_bad_readings_are_refused_with_a_reason(raw, reason):
    with pytest.raises(RecordError) as info:
        decode(MeterReading, raw)
    assert reason in str(info.value)


def test_fence_ping_rules():
    base = {"v": 1, "source_id": "CMCC", "device_pid": "p1:ab", "device_kind": "phone", "ts": NOW}
    assert decode(FencePing, {**base, "cell_id": "460-00-1-2"}).cell_id == "460-00-1-2"
    with pytest.raises(RecordError, match="needs a position"):
        decode(FencePing, base)
    with pytest.raises(RecordError, match="needs both lon and lat"):
        decode(FencePing, {**base, "lon": 110.4})
    with pytest.raises(RecordError, match="not one of"):
        decode(FencePing, {**base, "cell_id": "x", "device_kind": "tablet"})


def test_a_presence_batch_shares_its_zone_and_refuses_rows_one_by_one():
    rows = [{"device_pid": "p1:a", "device_kind": "phone", "since": NOW - 600, "ts": NOW},
            {"device_pid": "p1:b", "device_kind": "tablet", "since": NOW - 600, "ts": NOW},
            {"device_pid": "p1:c", "device_kind": "phone", "since": NOW - 600, "ts": NOW, "zone_id": "FZ-2"},
            {"device_pid": "p1:d", "device_kind": "phone", "since": NOW - 60, "ts": NOW, "left": True}]
    good, bad = decode_message(FencePresence, json.dumps({"v": 1, "zone_id": "FZ-1", "presences": rows}).encode())
    assert [(p.device_pid, p.zone_id, p.left) for p in good] == [("p1:a", "FZ-1", False), ("p1:d", "FZ-1", True)]
    assert [i for i, _ in bad] == [1, 2] and "device_kind" in bad[0][1]
    assert bad[1][1] == "v and zone_id belong to the batch, not to its presences"


def test_records_do_not_share_mutable_defaults():
    a = Signal(v=1, signal_id="a", site_id="S01", source_kind="power", source_id="M", kind="k", ts=NOW,
               strength=0.5, summary="s")
    b = Signal(v=1, signal_id="b", site_id="S01", source_kind="power", source_id="M", kind="k", ts=NOW,
               strength=0.5, summary="s")
    a.evidence.append("x")
    assert b.evidence == []


def test_dead_letter_keeps_original_bytes():
    raw = b"\x00\x01 not json"
    letter = DeadLetter.of(source="t", reason="r", value=raw, key=b"k", headers=[("h", b"\xff")], topic="x",
                           partition=1, offset=7)
    back = decode(DeadLetter, encode(letter))
    assert back.original_value() == raw
    assert (back.topic, back.partition, back.offset, back.reason) == ("x", 1, 7, "r")


def test_frame_headers():
    meta = FrameMeta("CAM-1", "S01", NOW, 42)
    assert FrameMeta.from_headers(meta.headers()) == meta
    with pytest.raises(RecordError, match="missing: seq"):
        FrameMeta.from_headers([h for h in meta.headers() if h[0] != "seq"])
    with pytest.raises(RecordError, match="unreadable"):
        FrameMeta.from_headers([*meta.headers()[:3], ("seq", b"x")])
    with pytest.raises(RecordError, match="zero bytes"):
        check_jpeg(b"")
    with pytest.raises(RecordError, match="not a JPEG"):
        check_jpeg(b"GIF89a")


def test_a_jpeg_that_claims_a_huge_picture_is_refused_before_any_decode():
    """A few hundred bytes can say 20000 x 20000: the decoder would fill 1.2 GB in."""
    import struct

    import cv2
    import numpy as np
    small = bytearray(cv2.imencode(".jpg", np.zeros((64, 64, 3), np.uint8))[1].tobytes())
    check_jpeg(bytes(small))
    sof = small.find(b"\xff\xc0")
    small[sof + 5:sof + 9] = struct.pack(">HH", 20000, 20000)
    with pytest.raises(RecordError, match="20000x20000 pixels: larger than 8K"):
        check_jpeg(bytes(small))
    with pytest.raises(RecordError, match="no frame header"):
        check_jpeg(b"\xff\xd8\xff\xda\x00\x08" + bytes(20))


def test_json_schema_describes_the_contract():
    schema = json_schema(MeterReading)
    assert schema["required"] == ["v", "source_id", "meter_id", "ts"]
    assert schema["properties"]["energy_kwh"] == {"anyOf": [{"type": "number"}, {"type": "null"}]}
    assert schema["additionalProperties"] is False


def test_published_schemas_are_current():
    check = subprocess.run([sys.executable, "-m", "streams.ops.cli", "schemas", "--check"], capture_output=True,
                           text=True, cwd=REPO)
    assert check.returncode == 0, check.stderr


@pytest.mark.parametrize("cls", [MeterReading, MeterReadingBatch, FencePing, FencePingBatch, FencePresence,
                                 FencePresenceBatch, Signal, Incident, DeadLetter])
def test_compiled_type_checks_agree_with_the_worded_ones(cls):
    # decode() asks each field's fast yes/no check first and its worded check only for
    # the reason; unions, lists and maps word their reasons in code of their own, and the
    # two must never disagree, or a bad value would pass or a good one fail.
    samples = [0, 1, -3, 1.5, float("nan"), float("inf"), True, False, None, "", "phone", "enter", [], [{}], ["x"],
               {}, {"a": 1}, {"a": "b"}, {"a": [1]}, [1.5, float("nan")], {"a": None}]
    for name, shape in field_shapes(cls).items():
        for value in samples:
            assert shape.fits(value) == (shape.problem(name, value) is None), (cls.__name__, name, value)


@pytest.mark.parametrize("record", [
    MeterReading(v=1, source_id="u", meter_id="M-0001", ts=NOW - 900, energy_kwh=2.5),
    MeterReadingBatch(v=1, source_id="u", readings=[{"meter_id": "M-0001", "ts": NOW, "energy_kwh": 1}]),
    FencePing(v=1, source_id="CMCC", device_pid="p1:ab", device_kind="phone", ts=NOW, lon=110.0, lat=34.0),
    FencePingBatch(v=1, source_id="CMCC", pings=[{"device_pid": "p1:ab"}]),
    FencePresence(v=1, zone_id="Z", device_pid="p1:ab", device_kind="vehicle_terminal", since=NOW - 60, ts=NOW),
    FencePresenceBatch(v=1, zone_id="Z", presences=[{"device_pid": "p1:ab"}]),
    Signal(v=1, signal_id="a", site_id="S01", source_kind="fence", source_id="Z", kind="k", ts=NOW, strength=0.5,
           summary="s", details={"n": [1, 2]}),
    Incident(v=1, incident_id="I", site_id="S01", state="new", severity="low", score=0.3, opened_at=NOW,
             updated_at=NOW, summary="s"),
    DeadLetter.of(source="x", reason="y", value=b"\x00", key=b"k", topic="t", partition=0, offset=1),
], ids=lambda r: type(r).__name__)
def test_decode_builds_the_same_record_as_the_constructor(record):
    # decode() sets checked fields directly instead of through Faust's __init__: the
    # result must be indistinguishable, defaults and private copies of them included.
    defaults = type(record)._options.defaults
    data = {k: v for k, v in json.loads(encode(record)).items() if k not in defaults or v != defaults[k]}
    decoded, built = decode(type(record), dict(data)), type(record)(**data)
    assert decoded == built and decoded.__dict__ == built.__dict__ and decoded.asdict() == built.asdict()
    for name, value in decoded.__dict__.items():
        if isinstance(value, (list, dict)) and name in defaults:
            assert value is not defaults[name]


def test_a_signal_id_is_the_hash_of_its_source_kind_and_identity():
    """Signal.of is the one way findings become signals. The id must stay what it was
    (replays after an upgrade are recognised as repeats), and differ with the identity."""
    import hashlib
    common = dict(site_id="S01", source_kind="power", source_id="M-0001", kind="reconnection", ts=NOW,
                  strength=0.9, summary="s", details={}, evidence=[])
    a = Signal.of(identity=("M-0001", "reconnection", NOW - 900, NOW), **common)
    again = Signal.of(identity=("M-0001", "reconnection", NOW - 900, NOW), **common)
    other = Signal.of(identity=("M-0001", "reconnection", NOW - 1800, NOW), **common)
    expected = hashlib.sha256(f"power|M-0001|reconnection|{NOW - 900}|{NOW}".encode()).hexdigest()[:24]
    assert a.signal_id == again.signal_id == expected != other.signal_id
    assert decode(Signal, encode(a)) == a
