"""The HTTP server process: health and metrics, the ingest APIs, and the alert console (its
API, its page and the live feed of incident changes read from the ``alerts`` topic).

Plain aiohttp. Health answers 200 when Kafka answers a metadata request, 503 otherwise,
so a load balancer or a patrol's uptime check sees a broken link to the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time

from aiohttp import web
from aiokafka import AIOKafkaConsumer
from prometheus_client import Gauge

from alerts.console.api import ConsoleApi, ConsoleSettings, add_api_routes, client_tokens
from alerts.console.ledger_api import LedgerApi, add_ledger_routes
from alerts.console.live import LiveFeed, incident_event
from alerts.evidence import EvidenceStore
from alerts.sealing import Sealer
from alerts.store import AlertStore, published
from streams.config import ShaftWatchConfig
from streams.contract.decoding import decode, encode
from streams.contract.records import Incident, RecordError, Signal
from streams.contract.topics import ALERTS, SIGNALS
from streams.edge.ingest.service import add_ingest_routes
from streams.kafka.admin import metadata_ok
from streams.kafka.producer import KafkaSink
from streams.logs import ids
from streams.metrics import CONTENT_TYPE_LATEST, generate_latest
from streams.ops.processes import stop_on_signals

log = logging.getLogger("shaftwatch.server")


SINK = web.AppKey("sink", KafkaSink)
FOLLOWER = web.AppKey("alerts_follower", asyncio.Task)
COVERAGE = web.AppKey("coverage_watch", asyncio.Task)


async def follow_alerts(cfg: ShaftWatchConfig, live: LiveFeed) -> None:
    """Every incident change on ``alerts`` (fusion's, housekeeping's, the console's own)
    to the open console pages. Reads from the end: a page loads the list when it connects."""
    while True:
        consumer = AIOKafkaConsumer(cfg.topic(ALERTS.name), bootstrap_servers=cfg.bootstrap_servers,
                                    group_id=None, auto_offset_reset="latest", **cfg.kafka_security.client_args())
        try:
            await consumer.start()
            async for message in consumer:
                try:
                    live.publish(incident_event(decode(Incident, message.value).asdict()))
                except RecordError as exc:
                    log.warning("unreadable incident on alerts", extra=ids(offset=message.offset, reason=str(exc)))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the broker went away: try again shortly
            log.warning("alerts feed interrupted; retrying", extra=ids(error=repr(exc)))
            await asyncio.sleep(2.0)
        finally:
            await consumer.stop()


def console_settings(cfg: ShaftWatchConfig) -> ConsoleSettings:
    """What the console needs of the config; ops may read the thresholds, cameras, meters
    and fence zones in force (never a secret: only the names of variables holding them)."""
    console = cfg.runtime.console
    return ConsoleSettings(
        county=cfg.sites.county, townships=tuple(cfg.sites.townships),
        timezone_offset_h=cfg.thresholds.timezone_offset_h, session_ttl_s=console.session_hours * 3600,
        secure_cookies=console.secure_cookies, map_tile_url=console.map_tile_url,
        fence_renew_within_s=cfg.fences.camara.renew_within_h * 3600 if cfg.fences.camara else None,
        config_view={"config_dir": cfg.config_dir, "thresholds": cfg.thresholds.model_dump(mode="json"),
                     "cameras": [{"id": c.id, "site_id": c.site_id, "zones": [z.name for z in c.zones]}
                                 for c in cfg.cameras.cameras],
                     "meters": [{"id": m.id, "site_id": m.site_id, "kind": m.kind} for m in cfg.meters.meters],
                     "fence_zones": [{"id": z.id, "name": z.name, "site_ids": z.site_ids} for z in cfg.fences.zones]})


SITES_OVERDUE = Gauge("shaftwatch_sites_overdue", "Sites visited fewer times in the last 7 days than required")
FENCE_SUBSCRIPTIONS_LAPSED = Gauge(
    "shaftwatch_fence_subscriptions_lapsed",
    "Carrier geofencing subscriptions ended or expired without renewal: a fence silent for someone on the watchlist")
COVERAGE_EVERY_S = 60.0


def create_web_app(cfg: ShaftWatchConfig) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)  # a visit's or a tip-off's photos
    started = time.time()
    store = AlertStore(cfg.store_url)
    live = LiveFeed()

    async def start(app: web.Application) -> None:
        # One producer for the process: ingest writes through it, the console publishes
        # incident state changes through it.
        app[SINK] = KafkaSink(cfg.bootstrap_servers, "server", linger_ms=10, security=cfg.kafka_security)
        await app[SINK].start()
        await asyncio.get_running_loop().run_in_executor(None, store.migrate)
        app[FOLLOWER] = asyncio.create_task(follow_alerts(cfg, live))
        app[COVERAGE] = asyncio.create_task(watch_coverage())

    async def stop(app: web.Application) -> None:
        for task in (app[FOLLOWER], app[COVERAGE]):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await app[SINK].stop()

    async def publish(incident: dict) -> None:
        await app[SINK].send(cfg.topic(ALERTS.name), incident["id"], encode(Incident.of(published(incident))))

    async def emit_evidence(fields: dict) -> str:
        """Evidence from outside (a patrol's problem, a verified tip-off, a drone team) to
        fusion, as a Signal of source kind ``external`` on ``signals``."""
        signal = Signal.of(source_kind="external", **fields)
        await app[SINK].send(cfg.topic(SIGNALS.name), signal.site_id, encode(signal))
        return signal.signal_id

    async def watch_coverage() -> None:
        """Sites overdue for a patrol visit and fences gone silent for someone on the
        watchlist, as metrics (a county can alert on them)."""
        loop = asyncio.get_running_loop()
        while True:
            with contextlib.suppress(Exception):
                rows = await loop.run_in_executor(None, store.patrols.coverage, time.time(),
                                                  cfg.sites.patrol.weekly_visits)
                SITES_OVERDUE.set(sum(1 for r in rows if r["overdue"]))
                FENCE_SUBSCRIPTIONS_LAPSED.set(len(await loop.run_in_executor(None, store.fence_subscriptions.lapsed)))
            await asyncio.sleep(COVERAGE_EVERY_S)

    async def end_live_pages(app: web.Application) -> None:
        live.close()

    app.on_startup.append(start)
    app.on_shutdown.append(end_live_pages)
    app.on_cleanup.append(stop)

    async def health(request: web.Request) -> web.Response:
        try:
            await asyncio.wait_for(metadata_ok(cfg.bootstrap_servers, cfg.kafka_security), 5.0)
            kafka = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means: not healthy
            kafka = f"unreachable: {exc!r}"
        body = {"status": "ok" if kafka == "ok" else "degraded", "component": "server", "kafka": kafka,
                "uptime_s": round(time.time() - started, 1)}
        return web.json_response(body, status=200 if kafka == "ok" else 503)

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    add_ingest_routes(app, cfg, lambda: app[SINK], store.fence_subscriptions)
    evidence = EvidenceStore(cfg.evidence_dir)
    console = ConsoleApi(store, client_tokens(cfg.runtime.api_clients, os.environ), publish, live,
                         evidence.path_of, console_settings(cfg))
    add_api_routes(app, console)
    add_ledger_routes(app, LedgerApi(console, Sealer.from_environment(), evidence, emit_evidence,
                                     cfg.thresholds.clock(), cfg.sites.patrol.weekly_visits, cfg.sites.county))
    return app


async def start_ops_server(component: str, host: str, port: int) -> web.AppRunner:
    """/health and /metrics for a process that has no other HTTP (gateways, feeders)."""
    started = time.time()

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "component": component,
                                  "uptime_s": round(time.time() - started, 1)})

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    log.info("ops endpoints listening", extra=ids(component=component, host=host, port=port))
    return runner


async def serve(cfg: ShaftWatchConfig, port: int | None = None) -> None:
    runner = web.AppRunner(create_web_app(cfg), access_log=None)
    await runner.setup()
    port = port or cfg.runtime.http.port
    site = web.TCPSite(runner, cfg.runtime.http.host, port)
    await site.start()
    log.info("http server listening", extra=ids(host=cfg.runtime.http.host, port=port))
    stop = asyncio.Event()
    stop_on_signals(stop)
    await stop.wait()
    await runner.cleanup()
    log.info("http server stopped")
