"""The alert store on a real SQLite file: idempotent fusion, lifecycle with audit, silences,
auto-close, escalation and the ledger."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from alerts.fusion import RECENT_SIGNALS, FusionRules
from alerts.lifecycle import LifecycleError
from alerts.store import AlertStore, StoreError, published
from alerts.store.incidents import SHOWN_SIGNALS
from alerts.store.schema import incidents
from detectors.timeofday import LocalClock
from streams.contract.decoding import decode, encode
from streams.contract.records import Incident
from tests.helpers import all_incidents, count_signals

CLOCK = LocalClock()
RULES = FusionRules()
NIGHT = CLOCK.epoch(2026, 11, 23, 2)


def signal(sid, site="S01", kind="power", strength=0.8, ts=NIGHT, source_id="M-0001"):
    return {"signal_id": sid, "site_id": site, "source_kind": kind, "source_id": source_id, "kind": "reconnection",
            "ts": ts, "strength": strength, "summary": f"signal {sid}", "details": {"kw": 30},
            "evidence": [f"power-curve:{sid}"]}


def test_replayed_signals_change_nothing(store):
    first, change = store.incidents.apply_signal(signal("a"), RULES, CLOCK)
    second, change2 = store.incidents.apply_signal(signal("b", kind="fence", strength=0.6, ts=NIGHT + 60), RULES, CLOCK)
    assert (change, change2) == ("opened", "updated") and first["id"] == second["id"]
    for s in (signal("a"), signal("b", kind="fence", strength=0.6, ts=NIGHT + 60)):
        assert store.incidents.apply_signal(s, RULES, CLOCK) == (None, "duplicate")
    assert len(all_incidents(store)) == 1 and count_signals(store) == 2
    full = store.incidents.get(first["id"])
    assert [s["signal_id"] for s in full["signals"]] == ["a", "b"]
    assert [a["action"] for a in full["audit"]] == ["opened", "evidence_added"]


def test_a_batch_of_signals_is_one_transaction_in_order(store):
    results = store.incidents.apply_signals([signal("a"), signal("b", kind="fence", ts=NIGHT + 60), signal("a"),
                                   signal("c", site="S02")], RULES, CLOCK)
    assert [change for _, change in results] == ["opened", "updated", "duplicate", "opened"]
    assert results[0][0]["id"] == results[1][0]["id"] != results[3][0]["id"]
    # A malformed signal spoils its whole batch: nothing of it is stored (the fusion agent
    # then stores the batch one signal at a time, so only the bad one is refused).
    broken = {k: v for k, v in signal("e").items() if k != "strength"}
    with pytest.raises(KeyError):
        store.incidents.apply_signals([signal("d", site="S02", ts=NIGHT + 60), broken], RULES, CLOCK)
    assert count_signals(store) == 3


def test_a_batch_hands_out_each_incident_as_stored_after_its_signal(store):
    """The batch follows incidents in memory and writes each once: what it hands out per
    signal is what the database held right after that signal, across sites, a resolved
    incident, a silence and a late signal."""
    first, _ = store.incidents.apply_signal(signal("a"), RULES, CLOCK)
    store.incidents.transition(first["id"], "resolve", "patrol-lead", disposition="illegal_mining_confirmed", note="caught")
    sid = store.silences.add(created_by="x", reason="permit", starts_at=NIGHT, ends_at=NIGHT + 7200, site_id="S02")
    batch = [signal("b", ts=NIGHT + 600), signal("c", kind="fence", ts=NIGHT + 660), signal("d", site="S02", ts=NIGHT + 30),
             signal("e", kind="vision", ts=NIGHT + 300), signal("b", ts=NIGHT + 600), signal("f", site="S02", ts=NIGHT - 60)]
    results = store.incidents.apply_signals(batch, RULES, CLOCK)
    assert [change for _, change in results] == ["opened", "updated", "opened", "updated", "duplicate", "updated"]
    reopened = results[0][0]
    assert reopened["previous_incident_id"] == first["id"] and reopened["opened_at"] == NIGHT + 600
    assert results[3][0]["opened_at"] == NIGHT + 300  # the late camera signal moved the opening back
    assert results[2][0]["silenced_by"] == sid and reopened["silenced_by"] is None
    # Each hand-out is a snapshot: later signals of the batch did not change it.
    assert [r["draft"]["signal_ids"] for r, _ in results if r] == [["b"], ["b", "c"], ["d"], ["b", "c", "e"], ["d", "f"]]
    # The last hand-out of each incident is exactly the stored row.
    for incident, _ in (results[3], results[5]):
        stored = store.incidents.get(incident["id"])
        assert {k: stored[k] for k in incident} == incident
        # the audit trail: opened, then the system's additions of evidence as one line
        assert [(a["action"], a["detail"].get("signals", 1)) for a in stored["audit"]] == \
            [("opened", 1), ("evidence_added", len(stored["signals"]) - 1)]
    assert count_signals(store) == 6 and len(all_incidents(store)) == 3
    # The site's confirmed incident, read once for the batch, raised the prior of the new one.
    assert reopened["score"] > results[2][0]["score"]


def test_lifecycle_is_audited_and_resolved_is_final(store):
    inc, _ = store.incidents.apply_signal(signal("a"), RULES, CLOCK)
    store.incidents.transition(inc["id"], "acknowledge", "duty-officer")
    store.incidents.transition(inc["id"], "dispatch", "patrol-lead", note="team 2 on the way")
    with pytest.raises(LifecycleError, match="needs a disposition"):
        store.incidents.transition(inc["id"], "resolve", "patrol-lead")
    done = store.incidents.transition(inc["id"], "resolve", "patrol-lead", disposition="illegal_mining_confirmed",
                            note="3 arrested, generator seized")
    assert done["state"] == "resolved" and done["disposition"] == "illegal_mining_confirmed"
    with pytest.raises(LifecycleError, match="resolved"):
        store.incidents.transition(inc["id"], "acknowledge", "duty-officer")
    trail = [(a["actor"], a["action"]) for a in store.incidents.get(inc["id"])["audit"]]
    assert trail == [("system", "opened"), ("duty-officer", "acknowledge"), ("patrol-lead", "dispatch"),
                     ("patrol-lead", "resolve")]
    # New evidence afterwards opens a new incident that links the old one, with a higher prior.
    new, change = store.incidents.apply_signal(signal("c", ts=NIGHT + 120), RULES, CLOCK)
    assert change == "opened" and new["previous_incident_id"] == inc["id"] and new["score"] > inc["score"]
    assert [e["kind"] for e in store.ledger.history("S01")] == ["registered", "incident_confirmed"]


def test_silence_records_but_marks(store):
    sid = store.silences.add(created_by="县自然资源局 李", reason="licensed backfilling work, permit 2026-114",
                            starts_at=NIGHT - 3600, ends_at=NIGHT + 3600, site_id="S02")
    quiet, _ = store.incidents.apply_signal(signal("a", site="S02"), RULES, CLOCK)
    loud, _ = store.incidents.apply_signal(signal("b", site="S01"), RULES, CLOCK)
    assert quiet["silenced_by"] == sid and loud["silenced_by"] is None
    shown = store.incidents.get(quiet["id"])
    assert shown["silence"]["reason"].startswith("licensed") and shown["silence"]["created_by"] == "县自然资源局 李"
    with pytest.raises(StoreError, match="at least one matcher"):
        store.silences.add(created_by="x", reason="y", starts_at=0, ends_at=1)


def test_quiet_incidents_close_and_unacknowledged_ones_escalate(store):
    import time
    rules_at = lambda _ts: RULES  # noqa: E731 - the same rules by day and night
    before = time.time()
    high, _ = store.incidents.apply_signal(signal("a", strength=0.9), RULES, CLOCK)
    low, _ = store.incidents.apply_signal(signal("b", site="S02", strength=0.2), RULES, CLOCK)
    medium, _ = store.incidents.apply_signal(signal("c", site="S03", strength=0.5, source_id="M-0003"), RULES, CLOCK)
    assert high["severity"] in ("high", "critical") and low["severity"] in ("info", "low")
    assert medium["severity"] == "medium"
    # The clock is the wall clock against when evidence was received: the signals' own
    # times (a night in 2026) do not count.
    received = high["received_at"]
    assert before <= received <= time.time()
    assert store.incidents.due_escalations(received + RULES.escalate_after_s - 1, rules_at) == []
    escalated = store.incidents.due_escalations(received + RULES.escalate_after_s + 1, rules_at)
    assert [i["id"] for i in escalated] == [high["id"]]
    assert store.incidents.due_escalations(received + RULES.escalate_after_s + 100, rules_at) == []  # once
    assert store.incidents.close_quiet(received + RULES.quiet_close_s - 5, rules_at) == []
    closed = store.incidents.close_quiet(received + RULES.quiet_close_s + 5, rules_at)
    # The high one waits for a person; the low and the medium one close themselves.
    assert sorted(i["id"] for i in closed) == sorted([low["id"], medium["id"]])
    assert store.incidents.get(low["id"])["disposition"] == "auto_closed_quiet"
    assert [i["id"] for i in store.incidents.ranked()] == [high["id"]]
    store.incidents.transition(high["id"], "acknowledge", "duty-officer")
    assert store.incidents.close_quiet(received + 100 * 86400, rules_at) == []


def test_evidence_for_a_system_closed_incident_reopens_it_with_an_audit_line(store):
    rules_at = lambda _ts: RULES  # noqa: E731
    first, _ = store.incidents.apply_signal(signal("a", site="S02", strength=0.3), RULES, CLOCK)
    [closed] = store.incidents.close_quiet(first["received_at"] + RULES.quiet_close_s + 1, rules_at)
    assert closed["state"] == "resolved"
    again, change = store.incidents.apply_signal(signal("b", site="S02", kind="fence", strength=0.9, ts=NIGHT + 1200),
                                       RULES, CLOCK)
    assert change == "reopened" and again["id"] == first["id"] and again["state"] == "new"
    assert again["disposition"] is None and again["note"] is None
    full = store.incidents.get(first["id"])
    assert [s["signal_id"] for s in full["signals"]] == ["a", "b"]
    assert [a["action"] for a in full["audit"]] == ["opened", "resolve", "reopened", "evidence_added"]
    assert len(all_incidents(store)) == 1


def test_a_write_that_lost_a_race_is_redone_on_what_the_winner_stored(store, monkeypatch):
    """Two processes write one incident: the patrol acknowledges it on the server while a
    worker's fusion batch, which read it before, adds evidence. Neither change is lost."""
    from alerts.store import incidents as store_module
    inc, _ = store.incidents.apply_signal(signal("a"), RULES, CLOCK)
    real_read = store_module._FusionBatch.read
    raced = []

    def read_then_lose_the_race(c, signals):
        batch = real_read(c, signals)
        if not raced:  # between this batch's read and its write, the server acknowledges
            raced.append(True)
            AlertStore(store.url).incidents.transition(inc["id"], "acknowledge", "duty-officer")
        return batch

    monkeypatch.setattr(store_module._FusionBatch, "read", staticmethod(read_then_lose_the_race))
    after, change = store.incidents.apply_signal(signal("b", kind="fence", ts=NIGHT + 60), RULES, CLOCK)
    assert raced and change == "updated" and after["state"] == "acknowledged"
    stored = store.incidents.get(inc["id"])
    assert stored["state"] == "acknowledged" and [s["signal_id"] for s in stored["signals"]] == ["a", "b"]
    assert stored["version"] == 2  # opened, acknowledged, evidence added: three writes, none lost


def test_an_incident_fed_for_days_carries_its_newest_signals_and_counts_them_all(store):
    """A cut line reconnected for ten days repeats its signal hourly into one incident: the
    store keeps all 240, the incident (row and record on ``alerts``) the newest 100 and the
    count, so its record stays small however long it lives, and an old repeat is still
    recognised."""
    hourly = [signal(f"r{h:03d}", ts=NIGHT + h * 3600) for h in range(240)]
    hourly[0]["details"] = {"kw": 99}  # the most it drew, on the first night
    for day in range(10):
        store.incidents.apply_signals(hourly[day * 24:(day + 1) * 24], RULES, CLOCK)
    (row,) = all_incidents(store)
    record = Incident.of(published(row))
    assert record.signal_count == 240 and record.signal_ids == [s["signal_id"] for s in hourly[-RECENT_SIGNALS:]]
    assert len(encode(record)) < 4000  # 240 ids in full would be 6.5 kB; a month of them 20 kB, and growing
    assert decode(Incident, encode(record)) == record  # what a consumer of alerts reads
    assert store.incidents.apply_signal(hourly[0], RULES, CLOCK) == (None, "duplicate")  # not among the newest
    assert count_signals(store) == 240
    # Its page: the newest SHOWN_SIGNALS signals, the count, what all of them saw, and the
    # system's 239 additions of evidence as one line of the audit trail.
    page = store.incidents.get(row["id"])
    assert [s["signal_id"] for s in page["signals"]] == [s["signal_id"] for s in hourly[-SHOWN_SIGNALS:]]
    assert page["signals_total"] == 240 and page["seen"]["power_kw"] == 99
    assert row["draft"]["seen"] == page["seen"] == store.incidents.ranked()[0]["seen"]  # kept, not re-read
    assert [(a["action"], a["detail"].get("signals"), a["detail"].get("until")) for a in page["audit"]] == [
        ("opened", None, None), ("evidence_added", 239, page["audit"][-1]["detail"]["until"])]
    assert page["audit"][-1]["detail"]["until"] > page["audit"][-1]["at"]


def test_what_an_incident_saw_is_read_from_its_signals_when_it_was_stored_without_it(store):
    """An incident stored before fusion kept ``seen`` in it: its pages read its signals."""
    store.incidents.apply_signals([signal("a", kind="vision", ts=NIGHT), signal("b", ts=NIGHT + 60)], RULES, CLOCK)
    (row,) = all_incidents(store)
    kept = row["draft"].pop("seen")
    assert kept["persons"] == 0 and kept["power_kw"] == 30 and kept["power_kinds"] == ["reconnection"]
    with store.engine.begin() as c:
        c.execute(sa.update(incidents).where(incidents.c.id == row["id"]).values(draft=row["draft"]))
    assert store.incidents.get(row["id"])["seen"] == kept == store.incidents.ranked()[0]["seen"]
    store.incidents.apply_signal(signal("c", ts=NIGHT + 120, source_id="M-0009") | {"details": {"kw": 45}},
                                 RULES, CLOCK)
    # the next signal is counted in too (read again from all three)
    assert store.incidents.get(row["id"])["seen"]["meter_id"] == "M-0009"
    assert store.incidents.ranked()[0]["seen"]["power_kw"] == 45
