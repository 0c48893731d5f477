"""``shaftwatch run``: the whole system on one machine, until Ctrl-C.

Starts, in order: the local Kafka broker (unless a cluster is configured), the topics,
the Faust worker(s), the HTTP server and the demo feeds, each as a child process in its
own session so that Ctrl-C reaches only this supervisor, which then stops them in reverse
order by PID (SIGTERM, then SIGKILL after a grace period) and the broker last. A child
that dies unexpectedly is restarted with a backoff, and so is the local broker (its
storage is kept, so it comes back with every topic and committed offset); each restart is
logged and counted in ``shaftwatch_child_restarts_total{child}``, served with the
supervisor's own /metrics on ``http.feeder_ops_port + 3``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from prometheus_client import start_http_server

from alerts.store import AlertStore
from alerts.store.accounts import one_time_password
from streams.config import ShaftWatchConfig
from streams.kafka.admin import ensure_topics, topic_plan
from streams.logs import ids
from streams.metrics import CHILD_RESTARTS_TOTAL
from streams.ops import DEMO_FEEDS
from streams.ops.local_broker import BrokerError, LocalKafkaBroker
from streams.ops.processes import stop_on_signals, terminate, wait_or_kill

log = logging.getLogger("shaftwatch.supervisor")

GRACE_S = 20.0
# The first restart of a dead child (or broker) waits this long, each next one twice as
# long, at most MAX_BACKOFF_S; the environment may set the first wait (tests do).
RESTART_BASE_S = float(os.environ.get("SHAFTWATCH_RESTART_BASE_S") or 1.0)
MAX_BACKOFF_S = 60.0


@dataclass
class Restarts:
    """When a dead process may be started again: exponential backoff, logged and counted."""

    name: str
    count: int = 0
    next_start: float = 0.0

    def due(self, dead: bool, rc: int | None) -> bool:
        """True when the dead process should be started now (the backoff has passed)."""
        if not dead:
            return False
        if self.next_start == 0.0:
            delay = min(MAX_BACKOFF_S, RESTART_BASE_S * 2.0 ** self.count)
            self.next_start = time.monotonic() + delay
            log.error("exited unexpectedly; restarting", extra=ids(child=self.name, rc=rc, restart_in_s=delay))
            return False
        if time.monotonic() < self.next_start:
            return False
        self.count += 1
        self.next_start = 0.0
        CHILD_RESTARTS_TOTAL.labels(child=self.name).inc()
        return True


@dataclass
class Child:
    name: str
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    restarts: Restarts | None = None

    def __post_init__(self) -> None:
        self.restarts = Restarts(self.name)

    def start(self, base_env: dict[str, str]) -> None:
        env = {**base_env, **self.env}
        self.proc = subprocess.Popen([sys.executable, "-m", "streams.ops.cli", *self.args], env=env,
                                     start_new_session=True, stdin=subprocess.DEVNULL)
        log.info("started", extra=ids(child=self.name, pid=self.proc.pid))

    def wait_stopped(self, deadline: float) -> None:
        if self.proc is None:
            return
        if not wait_or_kill(self.proc, deadline):
            log.warning("did not stop in time; killed", extra=ids(child=self.name, pid=self.proc.pid))
        log.info("stopped", extra=ids(child=self.name, pid=self.proc.pid, rc=self.proc.returncode))


def plan_children(cfg: ShaftWatchConfig, theft_site: str | None, theft_after_s: float,
                  demo_feeds: tuple[str, ...] = DEMO_FEEDS) -> list[Child]:
    children = [Child(f"worker-{i}", ["worker"],
                      {"SHAFTWATCH_WORKER_WEB_PORT": str(cfg.runtime.app.worker_web_port + i)})
                for i in range(cfg.runtime.app.workers)]
    children.append(Child("server", ["server"]))
    theft = ["--theft-site", theft_site, "--theft-after", str(theft_after_s)] if theft_site else []
    for i, feed in enumerate(DEMO_FEEDS):
        if feed in demo_feeds:  # each feed keeps its own ops port whichever others run
            ops_port = str(cfg.runtime.http.feeder_ops_port + i)
            children.append(Child(f"demo-{feed}", ["demo", feed, "--ops-port", ops_port, *theft]))
    return children


def run_all(cfg: ShaftWatchConfig, theft_site: str | None = None, theft_after_s: float = 60.0,
            demo_feeds: tuple[str, ...] = DEMO_FEEDS) -> int:
    stop = threading.Event()
    stop_on_signals(stop)

    broker = None
    env = dict(os.environ, SHAFTWATCH_CONFIG_DIR=cfg.config_dir)
    security = cfg.kafka_security  # a security setting without a cluster is refused here, before anything starts
    if cfg.kafka_bootstrap is None:
        broker = LocalKafkaBroker(cfg.runtime.kafka.local, cfg.data_dir / "kafka")
        broker.start()
        try:
            broker.wait_ready()
        except BaseException:
            broker.stop()
            raise
        env["KAFKA_BOOTSTRAP"] = broker.bootstrap
    bootstrap = env.get("KAFKA_BOOTSTRAP") or cfg.bootstrap_servers
    # The demo county's people get a one-time password for this run (printed below), so the
    # console can be tried at once; none is ever written down.
    demo_passwords = demo_accounts(cfg) if demo_feeds else {}
    children: list[Child] = []
    try:
        created = asyncio.run(ensure_topics(bootstrap, topic_plan(cfg), security=security))
        log.info("topics ready", extra=ids(bootstrap=bootstrap, created=created))
        children = plan_children(cfg, theft_site, theft_after_s, demo_feeds)
        for child in children:
            child.start(env)
        serve_metrics(cfg)
        print(banner(cfg, bootstrap, theft_site, theft_after_s, demo_passwords), flush=True)
        broker_restarts = Restarts("kafka")
        while not stop.wait(1.0):
            if broker is not None:
                dead = broker.proc is None or broker.proc.poll() is not None
                if broker_restarts.due(dead, broker.proc.returncode if broker.proc is not None else None):
                    try:
                        broker.start()  # the children reconnect by themselves once it answers
                    except BrokerError as exc:
                        broker.proc = None
                        log.error("could not restart Kafka", extra=ids(error=str(exc)))
            for child in children:
                if child.proc is not None and not stop.is_set() and \
                        child.restarts.due(child.proc.poll() is not None, child.proc.returncode):
                    child.start(env)
    finally:
        log.info("stopping", extra=ids(children=[c.name for c in children]))
        for child in reversed(children):
            terminate(child.proc)
        deadline = time.monotonic() + GRACE_S
        for child in reversed(children):
            child.wait_stopped(deadline)
        if broker is not None:
            broker.stop()
    return 0


def demo_accounts(cfg: ShaftWatchConfig) -> dict[str, str]:
    """The demo users (configs: demo.users) with a fresh one-time password each for this
    run: username -> password. Created on the first run, their password replaced after."""
    store = AlertStore(cfg.store_url)
    store.migrate()
    passwords = {}
    for user in cfg.runtime.demo.users:
        password = one_time_password()
        if store.accounts.get(user.username) is None:
            store.accounts.add(user.username, user.role, password, "shaftwatch run", user.display_name)
        else:
            store.accounts.set_password(user.username, password, "shaftwatch run")
        passwords[user.username] = password
    return passwords


def serve_metrics(cfg: ShaftWatchConfig) -> None:
    """The supervisor's /metrics (restarts of its children and of the broker), on the port
    after the demo feeders' three; a port already taken is logged, not fatal."""
    port = cfg.runtime.http.feeder_ops_port + 3
    try:
        start_http_server(port, addr=cfg.runtime.http.host)
        log.info("supervisor metrics listening", extra=ids(host=cfg.runtime.http.host, port=port))
    except OSError as exc:
        log.warning("supervisor metrics not served", extra=ids(port=port, error=str(exc)))


def banner(cfg: ShaftWatchConfig, bootstrap: str, theft_site: str | None, theft_after_s: float,
           demo_passwords: dict[str, str]) -> str:
    port = cfg.runtime.app.worker_web_port
    lines = [
        "",
        "ShaftWatch is running. Ctrl-C stops everything.",
        f"  alert console  http://{cfg.runtime.http.host}:{cfg.runtime.http.port}/  (sign in with an account)",
        f"  Kafka          {bootstrap}",
        f"  HTTP server    http://{cfg.runtime.http.host}:{cfg.runtime.http.port}/health  "
        "(/metrics, /openapi.json, /api/incidents)",
        f"  worker         http://127.0.0.1:{port}/health  (/metrics, /feeds/meters, /feeds/cameras)",
    ]
    lines.append(f"  demo feeds     http://{cfg.runtime.http.host}:{cfg.runtime.http.feeder_ops_port}/health .. "
                 f"{cfg.runtime.http.feeder_ops_port + 2}  (meters, fences, cameras; /metrics)")
    lines.append(f"  supervisor     http://{cfg.runtime.http.host}:{cfg.runtime.http.feeder_ops_port + 3}/metrics  "
                 "(restarts of children and of the local broker)")
    roles = {u.username: u.role for u in cfg.runtime.demo.users}
    for username, password in demo_passwords.items():
        lines.append(f"  sign in as {username:<12} ({roles[username]}) with {password}   (this run only)")
    if theft_site:
        lines.append(f"  demo theft     at site {theft_site} in {theft_after_s:.0f} s (night-time demo clock)")
        lines.append(f"  rehearsal      a fresh state of its own in {cfg.data_dir} (configs copied there; "
                     "the last 3 rehearsals are kept)")
    return "\n".join(lines) + "\n"
