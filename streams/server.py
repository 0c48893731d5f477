"""The HTTP server process: health and metrics now; the console and the ingest APIs mount here.

Plain aiohttp. Health answers 200 when Kafka answers a metadata request, 503 otherwise,
so a load balancer or a patrol's uptime check sees a broken link to the broker.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time

from aiohttp import web

from alerts.api import ConsoleApi, add_api_routes, operator_tokens
from alerts.store import AlertStore

from .broker import _metadata_ok
from .config import ShaftWatchConfig
from .ingest import add_ingest_routes
from .logs import ids
from .metrics import CONTENT_TYPE_LATEST, generate_latest
from .producer import KafkaSink
from .records import ALERTS, Incident, encode

log = logging.getLogger("shaftwatch.server")


SINK = web.AppKey("sink", KafkaSink)


def create_web_app(cfg: ShaftWatchConfig) -> web.Application:
    app = web.Application()
    started = time.time()
    store = AlertStore(cfg.store_url)

    async def start(app: web.Application) -> None:
        # One producer for the process: ingest writes through it, the console publishes
        # incident state changes through it.
        app[SINK] = KafkaSink(cfg.bootstrap_servers, "server", linger_ms=10)
        await app[SINK].start()
        await asyncio.get_running_loop().run_in_executor(None, store.migrate)

    async def stop(app: web.Application) -> None:
        await app[SINK].stop()

    async def publish(incident: dict) -> None:
        await app[SINK].send(cfg.topic(ALERTS.name), incident["id"], encode(Incident.from_store(incident)))

    app.on_startup.append(start)
    app.on_cleanup.append(stop)

    async def health(request: web.Request) -> web.Response:
        try:
            await asyncio.wait_for(_metadata_ok(cfg.bootstrap_servers), 5.0)
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
    add_ingest_routes(app, cfg, lambda: app[SINK])
    add_api_routes(app, ConsoleApi(store, operator_tokens(cfg.runtime.operators), publish))
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
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
    log.info("http server stopped")
