"""Power agent: ``meter-readings`` (keyed by meter id) -> power rules -> ``signals`` (keyed by site).

Per-meter state lives in the ``meter-state`` table, its baseline profile in the same table
(one key per bucket), backed by a changelog topic written at each offset commit, a meter's
keys in one record batch (streams.worker.changelog), so a restarted worker picks up every
baseline and every open run where its last commit left them. The rules themselves are in
``detectors.power``; this module only wires them to Kafka.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

from prometheus_client import Counter

from detectors.power import MeterSpec, PowerFinding, check_silence, feed_time, new_state, observe
from streams.contract.partitioning import check_home, partition_for
from streams.contract.records import MeterReading, RecordError, Signal
from streams.logs import ids
from streams.worker.app import PARTITIONS, app, config, config_watch
from streams.worker.emit import emit
from streams.worker.history import check_history, history_start
from streams.worker.intake import accepted_rows, count_accepted, refusing
from streams.worker.tables import BaselineBuckets, meter_state
from streams.worker.topics import meter_readings_topic

SOURCE = "power-agent"
log = logging.getLogger("shaftwatch.power")
METER_READINGS_TOTAL = Counter("shaftwatch_meter_readings_total", "What the rules made of accepted readings: "
                               "accepted, or duplicate_or_late (a re-sent interval, or beyond the late limit)",
                               ["outcome"])
# Bound once: labels() looks its child up by name each time, and a message carries hundreds of readings.
READINGS_ACCEPTED = METER_READINGS_TOTAL.labels(outcome="accepted")
READINGS_IGNORED = METER_READINGS_TOTAL.labels(outcome="duplicate_or_late")
SPECS: dict[str, MeterSpec] = config.meters.specs()  # each with its closure calendar
EARLIEST = history_start(config.meters.history_from)  # meters.yaml history_from: the oldest reading accepted
SPECS_BY_PARTITION: dict[int, list[MeterSpec]] = defaultdict(list)
for _spec in SPECS.values():
    SPECS_BY_PARTITION[partition_for(_spec.meter_id, PARTITIONS)].append(_spec)


def to_signal(finding: PowerFinding) -> Signal:
    return Signal.of(
        identity=(finding.meter_id, finding.kind, finding.episode_start, finding.ts),
        site_id=finding.site_id, source_kind="power", source_id=finding.meter_id, kind=finding.kind, ts=finding.ts,
        strength=finding.strength, summary=finding.summary,
        details={"expected": finding.expected, "seen": finding.seen, "why": finding.why,
                 "episode_start": finding.episode_start, **finding.details},
        evidence=[f"power-curve:{finding.meter_id}:{finding.episode_start:.0f}-{finding.ts:.0f}"],
    )


def load_state(meter_id: str) -> dict:
    """A meter's rule state from the tables, its baseline profile read through on demand."""
    state = dict(meter_state.peek(meter_id) or new_state())
    state["buckets"] = BaselineBuckets(meter_id)
    return state


def store_state(meter_id: str, state: dict) -> None:
    """Back to the tables (a copy made by load_state); buckets were written through as the
    rules changed them."""
    del state["buckets"]
    meter_state[meter_id] = state


# The rules run on the worker's event loop, since they read and write the tables, which
# belong to it; a message's readings are judged a slice at a time, and between slices the
# loop serves the other agents, timers, web pages and Kafka heartbeats. A slice of 50 holds
# it for about 5 ms at the ~0.1 ms a reading costs through the agent here (how long the
# loop is held in all: shaftwatch_event_loop_lag_seconds, printed by make bench-power).
RULES_SLICE = 50


async def apply_readings(readings: list[MeterReading], states: dict[str, dict]) -> list[Signal]:
    """Run the rules over readings, updating ``states`` (meter id -> state) in place."""
    signals = []
    in_force = config_watch.thresholds  # thresholds.yaml as now; day or night per reading below
    ignored = 0
    for index, reading in enumerate(readings):
        if index and index % RULES_SLICE == 0:
            await asyncio.sleep(0)  # let the loop run (see RULES_SLICE)
        spec = SPECS[reading.meter_id]  # unknown meters were refused with the message
        state = states[reading.meter_id]
        findings = observe(spec, in_force.at(reading.ts).power, in_force.clock, state, reading.ts, reading.power_kw,
                           reading.energy_kwh, reading.register_kwh)
        if findings is None:
            ignored += 1
            continue
        state["count"] = state.get("count", 0) + 1
        signals += [to_signal(f) for f in findings]
    READINGS_ACCEPTED.inc(len(readings) - ignored)
    READINGS_IGNORED.inc(ignored)
    return signals


def check_reading(reading: MeterReading, partition: int) -> None:
    if reading.meter_id not in SPECS:
        raise RecordError(f"unknown meter {reading.meter_id!r} (not in meters.yaml)")
    check_history(reading.ts, EARLIEST, "meters.yaml")
    check_home(reading.meter_id, PARTITIONS, partition, "meter")


@app.agent(meter_readings_topic, name="power-agent")
async def power_agent(stream):
    async for event in stream.events():
        async with meter_state.changing(), refusing(event, SOURCE):
            readings = await accepted_rows(event, SOURCE, "reading", MeterReading,
                                           lambda r: check_reading(r, event.message.partition))
            if readings:
                if event.message.partition not in stream_time.newest:
                    # Where this worker starts on a partition after each assignment: with the
                    # assignment log line, this follows a partition through rebalances.
                    log.info("first readings of an assigned partition", extra=ids(
                        partition=event.message.partition, offset=event.message.offset,
                        first_ts=min(r.ts for r in readings)))
                stream_time.advance(event.message.partition, max(r.ts for r in readings))
            # Read each meter's state once per message and write it back once; the
            # changelog gets it at the next commit.
            states = {mid: load_state(mid) for mid in {r.meter_id for r in readings}}
            signals = await apply_readings(readings, states)
            await emit(signals)  # acknowledged before the state is written (streams.worker.outputs)
            for meter_id, state in states.items():
                store_state(meter_id, state)
            count_accepted(event, len(readings))


class PartitionStreamTime:
    """Per input partition, the newest reading time this worker has processed since it was
    assigned that partition. Recovered table state says when each meter last reported,
    but not whether its feed moved on since: only readings processed here say that, so a
    partition without them is not judged at all. A check uses the stream time a partition
    had at the check before (at least one check interval ago), so that readings still on
    their way in a burst are not taken for silence."""

    def __init__(self) -> None:
        self.newest: dict[int, float] = {}
        self.settled: dict[int, float] = {}  # as of the previous check

    def advance(self, partition: int, ts: float) -> None:
        self.newest[partition] = max(ts, self.newest.get(partition, ts))

    def forget(self, partitions) -> None:
        for partition in partitions:
            self.newest.pop(partition, None)
            self.settled.pop(partition, None)

    def settle(self) -> dict[int, float]:
        """The stream times to judge by now (those of the previous check); remember the
        current ones for the next."""
        judged = {p: self.settled[p] for p in self.newest if p in self.settled}
        self.settled = dict(self.newest)
        return judged


stream_time = PartitionStreamTime()


@app.on_partitions_revoked.connect
async def _forget_revoked(sender, revoked, **kwargs) -> None:
    # Another worker may own these now; when they come back, their stream time starts again.
    stream_time.forget({tp.partition for tp in revoked if tp.topic == meter_readings_topic.get_topic_name()})


# Silences already announced by this process (meter id -> last reading). Tables can only
# be written from a stream, so this is kept in memory: after a restart a silence still
# open and judged again is announced with the same signal id, and fusion drops the repeat.
_announced_silence: dict[str, float] = {}


@app.timer(interval=config.runtime.silence_check_s, name="power-silence-check")
async def silence_check():
    """Meters that went silent: a live meter with no reading for silence_intervals while
    the rest of its partition's feed moved past it. The time judged by is where most of
    the partition's live meters are (``feed_time``), and never beyond what this worker
    processed of that partition (``PartitionStreamTime``)."""
    in_force = config_watch.thresholds
    for partition, processed_to in stream_time.settle().items():
        states = {spec.meter_id: meter_state.get(spec.meter_id) for spec in SPECS_BY_PARTITION[partition]}
        reached = feed_time([s for s in states.values() if s is not None])
        if reached is None:
            continue
        now = min(processed_to, reached)
        for spec in SPECS_BY_PARTITION[partition]:
            state = states[spec.meter_id]
            if state is None or _announced_silence.get(spec.meter_id) == state.get("last_ts"):
                continue
            finding = check_silence(spec, in_force.at(now).power, dict(state), now)
            if finding is not None:
                _announced_silence[spec.meter_id] = state["last_ts"]
                await emit([to_signal(finding)])
