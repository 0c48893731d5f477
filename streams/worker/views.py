"""The worker's own HTTP pages (Faust web): health, metrics and feed activity."""

from __future__ import annotations

import asyncio
import time

from streams.kafka.admin import metadata_ok
from streams.metrics import CONSUMER_LAG, CONTENT_TYPE_LATEST, generate_latest
from streams.worker.app import app, config, config_watch
from streams.worker.tables import BaselineBuckets, camera_activity, meter_state, meter_states

_started = time.time()


_kafka_answer: dict = {"at": 0.0, "kafka": "unknown"}
KAFKA_CHECK_S = 3.0  # how long /health waits for Kafka's answer; an answer is kept this long too


async def kafka_status() -> str:
    """"ok", or "unreachable: ..." when Kafka does not answer a metadata request in time.
    Asked at most every KAFKA_CHECK_S, so a busy health checker does not load the brokers."""
    if time.monotonic() - _kafka_answer["at"] >= KAFKA_CHECK_S:
        try:
            await asyncio.wait_for(metadata_ok(config.bootstrap_servers, config.kafka_security), KAFKA_CHECK_S)
            answer = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means: not reachable
            answer = f"unreachable: {exc!r}"
        _kafka_answer.update(at=time.monotonic(), kafka=answer)
    return _kafka_answer["kafka"]


@app.page("/health")
async def health(web, request):
    """200 while Kafka answers; 503 ("degraded") when it does not: the worker then holds
    its partitions but can neither read nor commit, and says so."""
    assignment = sorted(f"{tp.topic}:{tp.partition}" for tp in app.assignor.assigned_actives())
    kafka = await kafka_status()
    return web.json({
        "status": "ok" if kafka == "ok" else "degraded",
        "component": "worker",
        "app": app.conf.id,
        "kafka": kafka,
        "uptime_s": round(time.time() - _started, 1),
        "rebalancing": app.rebalancing,
        "active_partitions": assignment,
        "config": config_watch.status(),
    }, status=200 if kafka == "ok" else 503)


async def update_consumer_lag() -> None:
    """Lag of every partition this worker holds, as of this scrape, as Kafka's own tools count
    it: the partition's end offset (its high watermark, as last fetched) minus the group's
    committed offset there, the one this worker last committed or found committed when it
    was assigned the partition; with none committed yet, the partition's first offset (a new
    group reads from the earliest). Not the read position: the consumer fetches far ahead of
    what the agents have processed, so that would show a buffered backlog as 0."""
    CONSUMER_LAG.clear()
    # Faust's own record of committed offsets (its Consumer keeps no public accessor).
    committed = getattr(app.consumer, "_committed_offset", {})
    for tp in app.assignor.assigned_actives():
        end = app.consumer.highwater(tp)
        if end is None or end < 0:
            continue  # nothing fetched from it yet
        done = committed.get(tp)
        if done is None:
            done = 0 if end == 0 else await _log_start(tp)
        if done is not None:
            CONSUMER_LAG.labels(topic=tp.topic, partition=str(tp.partition)).set(max(0, end - done))


_LOG_START: dict = {}  # partition -> its first offset, asked once


async def _log_start(tp) -> int | None:
    """A partition's first offset, asked of Kafka once (and not at all when it cannot answer
    in a second: the scrape must not wait on the broker)."""
    if tp not in _LOG_START:
        try:
            _LOG_START[tp] = (await asyncio.wait_for(app.consumer.earliest_offsets(tp), 1.0))[tp]
        except Exception:  # noqa: BLE001 - asked again at the next scrape
            return None
    return _LOG_START[tp]


@app.page("/metrics")
async def metrics(web, request):
    await update_consumer_lag()
    # aiohttp wants the charset apart from the content type; the exposition format is ASCII.
    return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0] + "; version=0.0.4")


@app.page("/feeds/{feed}")
async def feeds(web, request, feed: str):
    """Activity per source, for the partitions this worker holds."""
    if feed == "cameras":
        return web.json({key: value for key, value in camera_activity.items()})
    if feed == "meters":
        return web.json({key: {"count": s.get("count", 0), "last_ts": s["last_ts"], "live": s["live"]}
                         for key, s in meter_states().items()})
    return web.json({"error": f"unknown feed {feed!r}; one of ['cameras', 'meters']"}, status=404)


@app.page("/state/meters/{meter_id}")
async def meter_detail(web, request, meter_id: str):
    """Everything the power rules hold for one meter (on the worker that owns it)."""
    state = meter_state.get(meter_id)
    if state is None:
        return web.json({"error": f"no state for {meter_id!r} on this worker"}, status=404)
    return web.json({**state, "buckets": BaselineBuckets(meter_id).as_dict()})
