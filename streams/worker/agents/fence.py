"""Fence agents.

``fence-pings`` (keyed by device pseudonym) -> fence-agent: which zones, dwell, entries,
watchlist, frequent visitors; the counted visits of each message go on to ``fence-presence``,
one FencePresenceBatch per zone keyed by zone ->
zone-agent: who is present together, crews. Both keep their state in changelog tables;
both emit ``Signal`` records to ``signals`` keyed by site.
"""

from __future__ import annotations

from detectors.fence import (
    FenceFinding, Ping, PresenceEvent, ZoneIndex, nearest_site, new_device_state, new_zone_state, observe_ping,
    observe_presence,
)
from streams.contract.decoding import encode_batch
from streams.contract.partitioning import check_home
from streams.contract.records import SCHEMA_VERSION, FencePing, FencePresence, RecordError, Signal
from streams.worker.app import PARTITIONS, app, config, config_watch
from streams.worker.emit import emit
from streams.worker.outputs import send_outputs
from streams.worker.history import check_history, history_start
from streams.worker.intake import accepted_rows, count_accepted, refusing
from streams.worker.tables import device_state, zone_state
from streams.worker.topics import fence_pings_topic, fence_presence_topic

SOURCE = "fence-agent"
ZONE_SOURCE = "zone-agent"
INDEX = ZoneIndex([z.zone() for z in config.fences.zones])
SITES = {s.id: (s.lon, s.lat) for s in config.sites.sites}
# Devices that raise nothing in a zone (fences.yaml allowlist_file), each until its date.
ALLOWED = config.allowlist.allow_list(config.thresholds.clock())
# The oldest ping this deployment accepts (fences.yaml history_from; the contract's floor is older).
EARLIEST = history_start(config.fences.history_from)


WATCHLIST = config.fences.read_watchlist()


def to_signals(finding: FenceFinding, lon: float | None = None, lat: float | None = None) -> list[Signal]:
    """One signal per site the finding concerns (the zone's sites nearest the position)."""
    zone = INDEX.zones[finding.zone_id]
    return [Signal.of(
        identity=(finding.kind, finding.zone_id, ",".join(finding.devices), finding.episode_start, finding.ts, site_id),
        site_id=site_id, source_kind="fence", source_id=finding.zone_id, kind=finding.kind, ts=finding.ts,
        strength=finding.strength, summary=finding.summary,
        details={"device_pids": finding.devices, "episode_start": finding.episode_start, **finding.details},
        evidence=[f"fence-timeline:{finding.zone_id}:{finding.episode_start:.0f}-{finding.ts:.0f}"],
    ) for site_id in nearest_site(lon, lat, zone.site_ids, SITES)]


def check_zone(zone_id: str) -> None:
    if zone_id not in INDEX.zones:
        raise RecordError(f"unknown fence zone {zone_id!r} (not in fences.yaml)")


def check_ping(record: FencePing, partition: int) -> None:
    """RecordError naming the device unless its zone is known and it came on its partition."""
    try:
        check_history(record.ts, EARLIEST, "fences.yaml")
        if record.zone_id is not None:
            check_zone(record.zone_id)
        check_home(record.device_pid, PARTITIONS, partition, "device")
    except RecordError as exc:
        raise RecordError(f"ping of {record.device_pid}: {exc}") from None


def check_presence(record: FencePresence) -> None:
    try:
        check_zone(record.zone_id)
    except RecordError as exc:
        raise RecordError(f"presence of {record.device_pid}: {exc}") from None


def by_zone(presences: list[PresenceEvent]) -> dict[str, list[FencePresence]]:
    """A message's counted visits as FencePresence records, per zone in order: the zone
    agent gets one batch message per zone instead of one per visit."""
    out: dict[str, list[FencePresence]] = {}
    for p in presences:
        out.setdefault(p.zone_id, []).append(FencePresence(
            v=SCHEMA_VERSION, zone_id=p.zone_id, device_pid=p.device_pid, device_kind=p.device_kind, since=p.since,
            ts=p.ts, left=p.left, lon=p.lon, lat=p.lat))
    return out


@app.agent(fence_pings_topic, name="fence-agent")
async def fence_agent(stream):
    async for event in stream.events():
        async with device_state.changing(), refusing(event, SOURCE):
            records = await accepted_rows(event, SOURCE, "ping", FencePing,
                                          lambda r: check_ping(r, event.message.partition))
            presences, signals = [], []
            in_force = config_watch.thresholds  # thresholds.yaml as now; day or night per ping below
            for record in records:
                ping = Ping(record.device_pid, record.device_kind, record.ts, record.lon, record.lat,
                            record.accuracy_m, record.cell_id, record.zone_id, record.event)
                state = device_state.peek(record.device_pid) or new_device_state()  # set back below
                rules = in_force.at(ping.ts).fence
                findings, found_presences = observe_ping(state, ping, INDEX.locate(ping, rules), INDEX, rules,
                                                         in_force.clock, WATCHLIST, ALLOWED)
                device_state[record.device_pid] = state
                presences += found_presences
                for finding in findings:
                    signals += to_signals(finding, record.lon, record.lat)
            # Outputs first, acknowledged before the state (streams.worker.outputs says why); a
            # presence replayed after a crash sets in the zone's state what it set before.
            await send_outputs(fence_presence_topic, [
                (zone_id.encode(), encode_batch(FencePresence, {"zone_id": zone_id}, rows))
                for zone_id, rows in by_zone(presences).items()])
            await emit(signals)
            count_accepted(event, len(records))


@app.agent(fence_presence_topic, name="zone-agent")
async def zone_agent(stream):
    async for event in stream.events():
        async with zone_state.changing(), refusing(event, ZONE_SOURCE):
            records = await accepted_rows(event, ZONE_SOURCE, "presence", FencePresence, check_presence)
            signals = []
            in_force = config_watch.thresholds  # thresholds.yaml as now; day or night per visit below
            for p in records:
                state = zone_state.peek(p.zone_id) or new_zone_state()  # set back below
                findings = observe_presence(state, PresenceEvent(p.zone_id, p.device_pid, p.device_kind, p.since, p.ts,
                                                                 left=p.left, lon=p.lon, lat=p.lat),
                                            in_force.at(p.ts).fence, in_force.clock)
                zone_state[p.zone_id] = state
                for finding in findings:
                    signals += to_signals(finding, *(finding.details.get("centre") or (None, None)))
            await emit(signals)  # acknowledged before the state is written (streams.worker.outputs)
            count_accepted(event, len(records))
