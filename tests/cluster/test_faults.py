"""A county night on the three-node cluster, with faults, against the same night without.

Two workers process the night's meters, pings and frames (the theft at S01 of
tests/streams/worker/test_incident_clock.py). In the middle of it the worker that holds
S01's signals is SIGKILLed, a third worker joins (a rebalance), and the Kafka node that
leads S01's signals partition is SIGKILLed; the utility goes on pushing readings over the
HTTP ingest while that node is down, and the node is started again. The same input then
runs on a single worker with no fault. Both must end the same: the same incidents, each
once, with all their evidence and the same score (no signal counted twice), and the same
detector state in every state table (read from the changelogs, which is what any worker
recovers).
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from faust.serializers import codecs

from alerts.store import AlertStore
from streams.config import load_config
from streams.contract.partitioning import partition_for
from streams.kafka.admin import ensure_topics, topic_plan
from streams.ops.demo import DemoClock
from streams.worker.changelog import STATE_CODEC
from tests.helpers import REPO, ServerProcess, WorkerProcess, all_incidents, free_port, isolated_config, wait_for
from tests.streams.worker.test_incident_clock import (
    FAST_CLOCKS, INTERVAL, TheftNight, every_signal_stored, holder_of, signals_on_kafka,
)

UTILITY_TOKEN = "utility-token-for-the-cluster-test"
STATE_TABLES = ("meter-state", "device-state", "zone-state")


class Utility:
    """The power utility pushing readings to the server's HTTP ingest."""

    def __init__(self, server: ServerProcess):
        self.server = server

    def post_meters(self, rows: list[dict], deadline_s: float = 120.0) -> list[int]:
        """POST the rows until they are acknowledged (200); a 503 must say when to retry.
        Returns the statuses seen."""
        statuses = []
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            request = urllib.request.Request(
                self.server.url("/ingest/meter-readings"), data=json.dumps(rows).encode(), method="POST",
                headers={"Authorization": f"Bearer {UTILITY_TOKEN}", "Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=40) as response:
                    answer = json.loads(response.read())
                    statuses.append(response.status)
                    assert (answer["accepted"], answer["rejected"]) == (len(rows), 0), answer
                    return statuses
            except urllib.error.HTTPError as exc:
                statuses.append(exc.code)
                assert exc.code == 503 and int(exc.headers["Retry-After"]) >= 1, (exc.code, exc.read())
                time.sleep(int(exc.headers["Retry-After"]))
        raise AssertionError(f"rows never acknowledged: {statuses}")


async def latest_by_key(bootstrap: str, topic: str) -> dict:
    """A compacted view of a changelog: each key's last value (a deleted key left out)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in (await _partitions(bootstrap, topic))]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        state: dict = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            positions = {tp: await consumer.position(tp) for tp in partitions}
            if all(positions[tp] >= end[tp] for tp in partitions):
                break
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    key = json.loads(r.key)
                    if r.value is None:
                        state.pop(key, None)
                    else:
                        state[key] = codecs.loads(STATE_CODEC, r.value)
        return state
    finally:
        await consumer.stop()


async def _partitions(bootstrap: str, topic: str) -> list[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
        return sorted(p["partition"] for p in described["partitions"])
    finally:
        await admin.close()


async def leader_of(bootstrap: str, topic: str, partition: int) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
        return next(p["leader"] for p in described["partitions"] if p["partition"] == partition)
    finally:
        await admin.close()


def http_rows(records) -> list[dict]:
    """Readings as the utility's HTTP rows: the server sets the version and the source."""
    rows = []
    for _, value, _ in records:
        row = json.loads(value)
        rows.append({k: v for k, v in row.items() if k not in ("v", "source_id") and v is not None})
    return rows


def partition_trail(workers: list[WorkerProcess]) -> str:
    """Each worker's assignments and where it began reading meters on each: the story a
    failure needs (which worker held a partition when, and from which offset)."""
    lines = []
    for worker in workers:
        for line in worker.log_tail(10**7).splitlines():
            if '"partitions assigned"' in line or '"first readings of an assigned partition"' in line:
                lines.append(f"{worker.log_path.name}: {line}")
    return "\n".join(lines)


def county_night(cluster, tmp_path: Path, name: str, t0: float, faults: bool) -> dict:
    config_dir = isolated_config(tmp_path / name, name, partitions=4, app={"topics": {"replication": 3}},
                                 **FAST_CLOCKS)
    cfg = load_config(config_dir)
    bootstrap = cluster.bootstrap
    # Each night starts on a whole cluster: after the faulty night, the restarted node has
    # every replica back in sync before the calm night's topics are made.
    cluster.wait_in_sync()
    asyncio.run(ensure_topics(bootstrap, topic_plan(cfg)))
    night = TheftNight(cfg, bootstrap, t0=t0)
    workers: list[WorkerProcess] = []
    server = None
    outcome: dict = {"statuses": [], "faults": []}

    started: list[WorkerProcess] = []

    def start() -> WorkerProcess:
        worker = WorkerProcess(config_dir, bootstrap, tmp_path / f"{name}-worker-{len(started)}.log",
                               port=free_port()).start()
        workers.append(worker)
        started.append(worker)
        return worker

    try:
        server = ServerProcess(config_dir, bootstrap, tmp_path / f"{name}-server.log", env={
            "SHAFTWATCH_TOKEN_UTILITY": UTILITY_TOKEN, "SHAFTWATCH_PSEUDONYM_KEY": "cluster-test-key"})
        utility = Utility(server)
        for _ in range(2 if faults else 1):
            start()
        for worker in workers:
            worker.wait_ready()
        # The utility's day of history and the theft's first half hour; the carrier's and the
        # camera's feeds (partners writing to Kafka themselves).
        night.send_first_half_hour()
        store = AlertStore(cfg.store_url)
        TheftNight.wait_critical(store, 180, what=f"{name}: ")

        signals = cfg.topic("signals")
        partition = partition_for("S01", 4)
        killed_node = None
        if faults:
            holder = holder_of(workers, signals, partition)
            holder.proc.kill()  # SIGKILL: no goodbye to the group, no commit
            holder.proc.wait()
            workers.remove(holder)
            leader = asyncio.run(leader_of(bootstrap, signals, partition))
            killed_node = next(i for i, node in enumerate(cluster.nodes) if node.node_id == leader)
            cluster.nodes[killed_node].kill()
            outcome["faults"] = [f"worker SIGKILL (held {signals}:{partition})", f"Kafka node {leader} SIGKILL"]
            start()  # a worker joins while a node is down: the group rebalances

        # The theft goes on; the utility pushes its readings over HTTP, one interval a request.
        for ts in range(int(t0 + 2 * INTERVAL), int(t0 + 5 * INTERVAL) + 1, INTERVAL):
            outcome["statuses"] += utility.post_meters(http_rows(night.meters(ts, ts)))
        night.send("fence-pings", night.pings(t0 + 660, t0 + 1200))
        night.send("frames", night.frames(t0 + 300, 100))
        if faults:
            cluster.restart(killed_node)
        for worker in workers:
            worker.wait_ready(timeout=120)

        repeat_ts = float(t0 + 4 * INTERVAL)  # the reconnection repeats every 4 intervals
        wait_for(lambda: any(s["ts"] == repeat_ts for i in all_incidents(store)
                             for s in store.incidents.get(i["id"])["signals"]), 180,
                 what=f"{name}: the theft's later power evidence stored")
        wait_for(lambda: every_signal_stored(store, cfg, bootstrap), 180, what=f"{name}: every S01 signal stored")
        time.sleep(5)  # housekeeping and silence checks run every second meanwhile

        incidents = []
        for row in all_incidents(store):
            full = store.incidents.get(row["id"])
            stored = [s["signal_id"] for s in full["signals"]]
            assert len(stored) == len(set(stored)), f"{name}: a signal stored twice in {row['id']}"
            incidents.append((full["site_id"], full["state"], full["severity"], round(full["score"], 6),
                              tuple(sorted(full["draft"]["strongest"])), tuple(sorted(stored))))
            outcome.setdefault("signals", {}).update({s["signal_id"]: (s["source_kind"], s.get("kind"),
                                                                       s.get("source_id"), s["ts"])
                                                      for s in full["signals"]})
        emitted = {s.signal_id for s in signals_on_kafka(cfg, bootstrap)}
        outcome["incidents"] = sorted(incidents)
        outcome["evidence_complete"] = emitted <= {sid for i in incidents for sid in i[5]}
        outcome["tables"] = {table: asyncio.run(latest_by_key(bootstrap, f"{cfg.runtime.app.id}-{table}-changelog"))
                             for table in STATE_TABLES}
        outcome["trail"] = partition_trail(started)
        return outcome
    finally:
        for worker in workers:
            worker.stop()
        if server is not None:
            server.stop()


def test_a_county_night_ends_the_same_through_worker_and_broker_faults(kafka_cluster, tmp_path):
    now = DemoClock.night(load_config(REPO / "configs").thresholds.clock()).now()
    t0 = now - now % INTERVAL
    started = time.monotonic()
    faulty = county_night(kafka_cluster, tmp_path, "faulty", t0, faults=True)
    faulty_s = time.monotonic() - started
    calm = county_night(kafka_cluster, tmp_path, "calm", t0, faults=False)
    assert faulty["faults"] and all(s in (200, 503) for s in faulty["statuses"])
    problems = []
    # Every incident the input implies, once, with the same severity, score and kinds of
    # evidence, and with every signal emitted for it, each stored once.
    assert [i[0] for i in calm["incidents"]] == ["S01"] and calm["incidents"][0][2] == "critical"
    if [i[:5] for i in faulty["incidents"]] != [i[:5] for i in calm["incidents"]]:
        problems.append(f"incidents: {[i[:5] for i in faulty['incidents']]} != {[i[:5] for i in calm['incidents']]}")
    if not (faulty["evidence_complete"] and calm["evidence_complete"]):
        problems.append("a signal emitted on Kafka is missing from its incident")
    # The same evidence: power signals (one meter's readings on one partition) are the same
    # signals; crew signals as many of each kind and source; camera signals of the same
    # kinds and sources, none fewer. Which frame confirms a track, and which ping completes
    # a crew, is not fixed by the input: the detector's scores differ in the last digit
    # between runs (threaded inference), and pings of several devices reach their zone's
    # partition in the order their partitions are read. A camera's tracks live in its
    # worker's memory: when the rebalance moves its frames partition in the middle of a
    # track, the new owner tracks that person afresh and reports them once more (one more
    # signal on the same incident, whose score and severity the comparison above holds;
    # README, "Limits"). Seen in 1 of 3 runs on 2026-12-03.
    def power(run):
        return {k for k, v in run["signals"].items() if v[0] == "power"}

    def kinds(run, cameras: bool):
        out: dict = {}
        for source_kind, kind, source_id, _ in run["signals"].values():
            if (source_kind == "vision") == cameras:
                out[(source_kind, kind, source_id)] = out.get((source_kind, kind, source_id), 0) + 1
        return out
    if power(faulty) != power(calm):
        problems.append(f"power evidence differs: {sorted(power(faulty) ^ power(calm))}")
    if kinds(faulty, cameras=False) != kinds(calm, cameras=False):
        problems.append(f"evidence by kind differs: {kinds(faulty, False)} != {kinds(calm, False)}")
    seen, expected = kinds(faulty, cameras=True), kinds(calm, cameras=True)
    if seen.keys() != expected.keys() or any(seen[k] < n for k, n in expected.items()):
        problems.append(f"camera evidence lost: {seen} against {expected}")
    # The detector state any worker would recover is the single worker's, key for key; but
    # for when a zone's crew began: the time of the presence that made it a crew, which
    # depends on the order the devices' partitions delivered them (see above).
    for run in (faulty, calm):
        for zone in run["tables"]["zone-state"].values():
            if isinstance(zone, dict) and isinstance(zone.get("crew"), dict):
                zone["crew"] = {k: v for k, v in zone["crew"].items() if k != "start"}
    for table in STATE_TABLES:
        differ = sorted(k for k in faulty["tables"][table].keys() | calm["tables"][table].keys()
                        if faulty["tables"][table].get(k) != calm["tables"][table].get(k))
        if differ:
            k = differ[0]
            problems.append(f"{table}: {len(differ)} of {len(calm['tables'][table])} keys differ, e.g. {k}: "
                            f"{faulty['tables'][table].get(k)} != {calm['tables'][table].get(k)}")
    assert len([k for k in calm["tables"]["meter-state"] if "/" not in k]) == 40  # and their buckets
    assert problems == [], "\n".join(problems) + "\n" + faulty["trail"]
    print(f"faulty night {faulty_s:.0f} s, ingest statuses {faulty['statuses']}, faults {faulty['faults']}")
