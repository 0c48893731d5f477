"""Fusion agent: ``signals`` (keyed by site) -> incidents in the alert store -> ``alerts``
(compacted, keyed by incident id) and notifications.

The logic is in alerts/ (fusion, store, notifier); this module wires it to Kafka. Store
calls are blocking database work and run on one executor thread, in signal order, a
micro-batch of signals to a transaction; the event loop only awaits them.

Housekeeping (quiet-close, escalation) runs on the leader. It decides from what is
stored with each incident (when its evidence was received, which severities it reached
when) against the wall clock, so any worker decides the same, after restarts,
rebalances and during a replay (alerts.fusion explains the rule).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

from prometheus_client import Counter, Histogram

from alerts.fusion import FusionRules, at_least
from alerts.notifier import Notifier, channels_from_config
from alerts.store import AlertStore, published
from streams.contract.decoding import decode
from streams.contract.records import Incident, Signal
from streams.logs import ids
from streams.worker.app import app, config, config_watch
from streams.worker.intake import count_accepted, count_in, refusing
from streams.worker.topics import alerts_topic, signals_topic

log = logging.getLogger("shaftwatch.fusion")

SOURCE = "fusion-agent"
BATCH = 64
BATCH_WAIT_S = 0.02
INCIDENT_CHANGES_TOTAL = Counter("shaftwatch_incident_changes_total", "Incident changes by fusion", ["change"])
SIGNAL_TO_STORE_SECONDS = Histogram("shaftwatch_signal_to_store_seconds", "From a signal read to its incident stored",
                            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))

store = AlertStore(config.store_url)
_db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alert-store")


async def in_store(fn, *args):
    return await app.loop.run_in_executor(_db, fn, *args)


notifier = Notifier(channels_from_config(config.runtime.notify), in_store, store.notifications,
                    config.runtime.notify.console_url, max_attempts=config.runtime.notify.max_attempts,
                    backoff_s=config.runtime.notify.backoff_s)


async def publish(row: dict) -> None:
    await alerts_topic.send(key=row["id"], value=Incident.of(published(row)))


async def after_store(stored: list[tuple[object, Signal, dict | None, str]], rules: FusionRules,
                      started: float) -> None:
    """``stored``: (event, signal, incident, change) of one batch, in order. Each signal is
    counted and logged; each incident it changed is published and notified once, as it
    stands after the batch (``alerts`` is compacted by incident id: its last state is
    what counts, and a notification is sent once per incident and kind anyway)."""
    last: dict[str, tuple[object, dict]] = {}
    for event, signal, incident, change in stored:
        SIGNAL_TO_STORE_SECONDS.observe(time.perf_counter() - started)
        INCIDENT_CHANGES_TOTAL.labels(change=change).inc()
        count_accepted(event)
        if incident is None:
            continue  # the same evidence again (a replay): nothing changes
        log.info("incident " + change, extra=ids(incident_id=incident["id"], site_id=incident["site_id"],
                                                  signal_id=signal.signal_id, score=incident["score"],
                                                  severity=incident["severity"]))
        last.pop(incident["id"], None)  # re-inserted: incidents go out in order of their last change
        last[incident["id"]] = (event, incident)
    for event, incident in last.values():
        async with refusing(event, SOURCE):
            await publish(incident)
            if at_least(incident["severity"], rules.notify_min_severity):
                await notifier.notify(incident, "opened")


@app.agent(signals_topic, name="fusion-agent")
async def fusion_agent(stream):
    # Signals come in bursts (a fence sweep, a meter interval): a micro-batch is stored in
    # one transaction. Waiting at most BATCH_WAIT_S for it keeps a lone signal quick.
    async for events in stream.take_events(BATCH, within=BATCH_WAIT_S):
        started = time.perf_counter()
        decoded = []
        for event in events:
            count_in(event)
            async with refusing(event, SOURCE):
                decoded.append((event, decode(Signal, event.value)))
        if not decoded:
            continue
        # The thresholds in force (thresholds.yaml as now, day or night by the batch's newest signal).
        in_force = config_watch.thresholds
        rules, clock = in_force.at(decoded[-1][1].ts).fusion, in_force.clock
        try:
            results = await in_store(store.incidents.apply_signals, [s.asdict() for _, s in decoded], rules, clock)
        except Exception:  # noqa: BLE001 - one bad signal spoils the batch: redo them one by one
            log.warning("a batch of signals failed to store; storing them one by one", exc_info=True)
            for event, signal in decoded:
                async with refusing(event, SOURCE):
                    incident, change = await in_store(store.incidents.apply_signal, signal.asdict(), rules, clock)
                    await after_store([(event, signal, incident, change)], rules, started)
            continue
        await after_store([(event, signal, *result) for (event, signal), result in zip(decoded, results)], rules,
                          started)


def fusion_rules_at(ts: float) -> FusionRules:
    """The fusion rules in force (thresholds.yaml as now) for evidence of source time ``ts``."""
    return config_watch.thresholds.at(ts).fusion


@app.timer(interval=config.runtime.incident_housekeeping_s, on_leader=True, name="incident-housekeeping")
async def housekeeping():
    """Close quiet, untouched incidents; escalate high ones nobody acknowledged."""
    now = time.time()
    for row in await in_store(store.incidents.close_quiet, now, fusion_rules_at):
        INCIDENT_CHANGES_TOTAL.labels(change="auto_closed").inc()
        await publish(row)
    for row in await in_store(store.incidents.due_escalations, now, fusion_rules_at):
        INCIDENT_CHANGES_TOTAL.labels(change="escalated").inc()
        await publish(row)
        await notifier.notify(row, "escalated")
