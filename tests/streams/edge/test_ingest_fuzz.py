"""Fuzzing the ingest (hypothesis): whatever a partner sends, the answer is a 2xx with a
reason for every refused row, or a 4xx with a reason, never a crash.

Two levels. The row parsers and the row validation run in process on generated bodies
(JSON built from the published OpenAPI row schemas and then broken: wrong types, missing,
unknown and reserved fields, huge numbers and strings, deep nesting, bad encodings; CSV
with every line ending, stray quotes and NUL bytes). Then the real server, on the
session's broker, is sent generated requests on every ingest path (CAMARA CloudEvents
included) with every content type and token; its only 5xx may be a deliberate 503 with
Retry-After.
Each level is bounded by a fixed number of examples (counts in FUZZ_EXAMPLES).
"""

from __future__ import annotations

import asyncio
import json
import string
import urllib.error
import urllib.request

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.config import load_config
from streams.edge.ingest.camara import read_body
from streams.edge.ingest.feeds import CAMARA_PATH, FENCES, METERS
from streams.edge.ingest.parsing import IngestError, parse_rows
from streams.edge.ingest.service import validate_rows
from streams.edge.pseudonyms import pseudonymize
from streams.kafka.admin import ensure_topics, topic_plan
from tests.helpers import REPO, ServerProcess, isolated_config

FUZZ_EXAMPLES = {"parsers": 900, "http": 300}
SPEC = json.loads((REPO / "streams" / "schemas" / "openapi.json").read_text())
ROW_SCHEMAS = {METERS.name: SPEC["components"]["schemas"]["MeterReadingRow"],
               FENCES.name: SPEC["components"]["schemas"]["FencePingRow"]}
FEEDS = {METERS.path: METERS, FENCES.path: FENCES, CAMARA_PATH: FENCES}
TOKENS = {"meters": "fuzz-utility-token", "fences": "fuzz-carrier-token"}
CAMARA_TYPES = [f"org.camaraproject.geofencing-subscriptions.v0.{kind}" for kind in (
    "area-entered", "area-left", "subscription-started", "subscription-updated", "subscription-ended")]


# --------------------------------------------------------------------------- strategies

json_scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=10**300, max_value=10**310)
                | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=30)
                | st.text(min_size=5000, max_size=6000, alphabet="x") | st.sampled_from(
                    ["", " ", "2026-11-23T01:15:00+08:00", "2026-11-23 01:15:00", "1e999", "-0", "NaN", "\x00",
                     "M-0001", "FZ-S01", "phone", "enter", "yesterday", "\ud7ff", "🙂" * 10]))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)


def from_schema(schema: dict) -> st.SearchStrategy:
    """Values that fit a (small) JSON schema of the published OpenAPI."""
    if "anyOf" in schema:
        return st.one_of([from_schema(s) for s in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of([from_schema({**schema, "type": k}) for k in kind])
    if kind == "object" and "properties" in schema:
        required = set(schema.get("required", []))
        return st.fixed_dictionaries(
            {k: from_schema(v) for k, v in schema["properties"].items() if k in required},
            optional={k: from_schema(v) for k, v in schema["properties"].items() if k not in required})
    return {"string": st.text(max_size=40) | st.sampled_from(["M-0001", "M-0040", "FZ-S01", "2026-11-23T01:15:00Z"]),
            "number": st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12)
            | st.sampled_from([1.79e9, 1.7e12, 0.0, -1.0]),
            "integer": st.integers(min_value=-10**6, max_value=10**6), "boolean": st.booleans(),
            "null": st.none()}.get(kind, json_values)


@st.composite
def rows(draw, feed) -> dict:
    """A row from the schema, sometimes broken: a field dropped, retyped or made up."""
    row = dict(draw(from_schema(ROW_SCHEMAS[feed.name])))
    for _ in range(draw(st.integers(0, 2))):
        action = draw(st.sampled_from(["drop", "retype", "unknown", "reserved"]))
        if action == "drop" and row:
            row.pop(draw(st.sampled_from(sorted(row))))
        elif action == "retype" and row:
            row[draw(st.sampled_from(sorted(row)))] = draw(json_values)
        elif action == "unknown":
            row[draw(st.text(max_size=12))] = draw(json_values)
        elif action == "reserved":
            row[draw(st.sampled_from(["v", "source_id", "device_pid"]))] = draw(json_values)
    return row


def json_bodies(feed) -> st.SearchStrategy[bytes]:
    listed = st.lists(rows(feed) | json_values, max_size=6)
    return st.one_of(
        listed.map(lambda r: json.dumps(r).encode()),
        listed.map(lambda r: json.dumps({feed.rows_key: r}).encode()),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.integers(1, 50_000).map(lambda n: b"[" * n + b"]" * n),  # deep nesting
        st.just(b"[" + b"9" * 5000 + b"]"),  # more digits than Python converts
        st.binary(max_size=200),
        st.text(max_size=200).map(lambda t: t.encode("utf-16")),
    )


@st.composite
def csv_bodies(draw, feed) -> bytes:
    columns = sorted(feed.row_shapes())
    header = draw(st.lists(st.sampled_from(columns + ["bogus", ""]), min_size=0, max_size=8))
    cell = st.text(alphabet=string.printable + "\x00\u00e9\u4e2d\"", max_size=12) | st.sampled_from(
        ["M-0001", "1.79e9", "2026-11-23T01:15:00Z", "", "\"a,b\"", "\"open", "1\r2", "x\ry"])
    lines = [",".join(header)] + [",".join(draw(st.lists(cell, max_size=len(header) + 2)))
                                  for _ in range(draw(st.integers(0, 5)))]
    end = draw(st.sampled_from(["\n", "\r\n", "\r", "\n\r"]))
    text = end.join(lines) + draw(st.sampled_from(["", end]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16"]))
    return text.encode(encoding, errors="replace")


@st.composite
def camara_bodies(draw) -> bytes:
    def event():
        area = st.fixed_dictionaries({}, optional={
            "areaType": st.sampled_from(["CIRCLE", "POLYGON"]) | json_values,
            "center": st.fixed_dictionaries({}, optional={"latitude": json_scalars, "longitude": json_scalars})
            | json_values,
            "radius": json_scalars})
        device = st.fixed_dictionaries({}, optional={"phoneNumber": json_scalars,
                                                     "networkAccessIdentifier": json_scalars,
                                                     "ipv4Address": json_values})
        return st.fixed_dictionaries({}, optional={
            "type": st.sampled_from(CAMARA_TYPES) | json_scalars, "time": json_scalars,
            "data": st.fixed_dictionaries({}, optional={
                "device": device | json_values, "area": area | json_values,
                "subscriptionId": st.sampled_from(["sub-1", ""]) | json_scalars,
                "terminationReason": st.sampled_from(["SUBSCRIPTION_EXPIRED", "SUBSCRIPTION_DELETED"]) | json_scalars,
                "updateReason": st.sampled_from(["SUBSCRIPTION_ACTIVE"]) | json_scalars}) | json_values})
    body = draw(event() | st.lists(event() | json_values, max_size=4) | json_values)
    return json.dumps(body).encode()


def bodies(feed, camara: bool) -> st.SearchStrategy[tuple[bytes, str]]:
    types = ["application/json", "text/csv", "application/cloudevents+json", "application/cloudevents-batch+json",
             "application/xml", ""]
    if camara:
        return st.tuples(camara_bodies() | json_bodies(feed), st.sampled_from(types))
    return (st.tuples(json_bodies(feed), st.sampled_from(types)) | st.tuples(csv_bodies(feed), st.just("text/csv")))


# --------------------------------------------------------------------------- in process


class Checks:
    """The checks the service makes beside the contract (known meters and zones, pseudonyms)."""

    known_meters = {f"M-{i:04d}" for i in range(1, 41)}

    @staticmethod
    def meter(record) -> None:
        from streams.contract.records import RecordError
        if record.meter_id not in Checks.known_meters:
            raise RecordError(f"unknown meter {record.meter_id!r}")

    @staticmethod
    def prepare_ping(fields: dict) -> dict:
        from streams.contract.records import RecordError
        fields = dict(fields)
        device_id = fields.pop("device_id", None)
        if not isinstance(device_id, str) or not device_id.strip():
            raise RecordError("device_id is missing or empty")
        fields["device_pid"] = pseudonymize(b"fuzz-key", device_id)
        return fields


def read_and_validate(path: str, body: bytes, content_type: str) -> None:
    """What the endpoint does before Kafka: it ends in rows (each accepted, or refused with
    a reason) or in an IngestError with a 4xx status and a reason; nothing else."""
    feed = FEEDS[path]
    try:
        parsed = parse_rows(feed, body, content_type)
    except IngestError as exc:
        assert 400 <= exc.status < 500 and str(exc), exc
        return
    prepare = Checks.prepare_ping if feed is FENCES else (lambda fields: fields)
    accepted, rejected = validate_rows(feed, parsed, "fuzz-source", Checks.meter, prepare)
    assert len(accepted) + len(rejected) == len(parsed)
    assert all(isinstance(reason, str) and reason for _, _, reason in rejected)
    for record in accepted:  # what goes to Kafka is a record of the contract, source from the token
        assert record.source_id == "fuzz-source"


@settings(max_examples=FUZZ_EXAMPLES["parsers"] // 2, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(bodies(METERS, camara=False))
def test_meter_bodies_never_crash_the_parser(body):
    read_and_validate(METERS.path, *body)


@settings(max_examples=FUZZ_EXAMPLES["parsers"] // 2, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(bodies(FENCES, camara=False))
def test_fence_bodies_never_crash_the_parser(body):
    read_and_validate(FENCES.path, *body)


@settings(max_examples=FUZZ_EXAMPLES["parsers"] // 3, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(bodies(FENCES, camara=True))
def test_camara_bodies_never_crash_the_reader(body):
    """Each CloudEvent becomes a row, a lifecycle notice or a refusal with its reason; a body
    that is no JSON a 4xx with its reason (the store's part is fuzzed over HTTP below)."""
    try:
        events = read_body(*body)
    except IngestError as exc:
        assert 400 <= exc.status < 500 and str(exc), exc
        return
    for event, raw, problem in events:
        assert (event is None) == bool(problem) and isinstance(raw, bytes)
        if isinstance(event, dict):
            assert event["event"] in ("enter", "exit") and ("device_id" in event or event["subscription_id"])


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"])
def test_csv_with_any_line_ending_is_parsed(ending):
    """Issue 15: a bare carriage return inside a field raised csv.Error (HTTP 500)."""
    text = ending.join(["meter_id,ts,power_kw", "M-0001,1795367700,1.5", "M-0002,1795367700,2"]) + ending
    rows = parse_rows(METERS, text.encode(), "text/csv")
    assert [r[0] for r in rows] == [{"meter_id": "M-0001", "ts": 1795367700.0, "power_kw": 1.5},
                                    {"meter_id": "M-0002", "ts": 1795367700.0, "power_kw": 2.0}]


def test_bad_csv_is_refused_with_a_reason():
    # A bare \r inside an unquoted cell ends the line there: the two halves are refused rows.
    rows = parse_rows(METERS, b"meter_id,ts,power_kw\nM-00\r01,1795367700,1.5\n", "text/csv")
    accepted, rejected = validate_rows(METERS, rows, "s", Checks.meter)
    assert accepted == [] and len(rejected) == 2 and all(reason for _, _, reason in rejected)
    with pytest.raises(IngestError, match="CSV cannot be read: field larger than field limit"):
        parse_rows(METERS, b"meter_id,ts,power_kw\nM-0001,1," + b"9" * 200_000 + b"\n", "text/csv")
    with pytest.raises(IngestError, match="names a column twice"):
        parse_rows(METERS, b"meter_id,ts,ts\nM-0001,1,2\n", "text/csv")


def test_json_that_python_cannot_hold_is_refused_with_a_reason():
    for body in (b"[" * 100_000 + b"]" * 100_000, b"[" + b"9" * 5000 + b"]"):
        with pytest.raises(IngestError) as refused:
            parse_rows(METERS, body, "application/json")
        assert refused.value.status == 400 and "not JSON" in str(refused.value)


# --------------------------------------------------------------------------- the real server


@pytest.fixture(scope="module")
def fuzz_server(kafka_bootstrap, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    config_dir = isolated_config(tmp, "fuzz")
    cfg = load_config(config_dir)
    asyncio.run(ensure_topics(kafka_bootstrap, topic_plan(cfg)))
    server = ServerProcess(config_dir, kafka_bootstrap, tmp / "server.log", env={
        "SHAFTWATCH_TOKEN_UTILITY": TOKENS["meters"], "SHAFTWATCH_TOKEN_CMCC": TOKENS["fences"],
        "SHAFTWATCH_PSEUDONYM_KEY": "fuzz-key"})
    yield server
    server.stop()


statuses: dict[int, int] = {}


@pytest.mark.broker
@settings(max_examples=FUZZ_EXAMPLES["http"], deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(st.sampled_from(sorted(FEEDS)).flatmap(lambda path: st.tuples(
    st.just(path), bodies(FEEDS[path], camara=path == CAMARA_PATH),
    st.sampled_from([None, "", "Bearer ", "Bearer wrong", "Basic abc", "Bearer " + TOKENS["meters"],
                     "Bearer " + TOKENS["fences"], "bearer " + TOKENS["fences"], "Bearer " + TOKENS["meters"] + "x"]))))
def test_the_server_answers_every_request_without_a_5xx(fuzz_server, request_):
    path, (body, content_type), authorization = request_
    headers = {"Content-Type": content_type} if content_type else {}
    if authorization is not None:
        headers["Authorization"] = authorization
    request = urllib.request.Request(fuzz_server.url(path), data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, answer = response.status, json.loads(response.read())
            assert status == 200 and answer["accepted"] + answer["rejected"] >= 0
            assert all(e["reason"] for e in answer["errors"])
    except urllib.error.HTTPError as exc:
        status = exc.code
        text = exc.read()
        assert status < 500 or (status == 503 and exc.headers["Retry-After"]), (status, text[:300])
        if status != 413:  # aiohttp's own size limit answers in plain text
            assert json.loads(text)["error"], text[:300]
    statuses[status] = statuses.get(status, 0) + 1
