"""The county's ledger workflow on the real store (SQLite and PostgreSQL): the ledger with
its history and CSV, patrol visits and close-out of what they find, coverage, tip-offs with
verification and rewards."""

from __future__ import annotations

import time

import pytest

from alerts.store import StoreError
from detectors.timeofday import LocalClock

CLOCK = LocalClock()
CONFIG_ROW = {"id": "S03", "name": "three", "township": "t", "lon": 110.2, "lat": 34.2, "status": "sealed",
              "sealed_on": "2024-01-02", "responsible": "李", "unit": "t 安监站"}


def test_the_file_applies_what_it_changed_and_leaves_console_edits_alone(store):
    store.ledger.sync([CONFIG_ROW])
    store.ledger.edit("S03", {"responsible": "赵 (新任)", "unit": "县应急局"}, "ops-li", "handover")
    store.ledger.sync([CONFIG_ROW])  # the file did not change: the console's edit stays
    assert store.ledger.get("S03")["responsible"] == "赵 (新任)"
    store.ledger.sync([{**CONFIG_ROW, "name": "three (renamed)", "status": "backfilled"}])
    site = store.ledger.get("S03")
    assert (site["name"], site["status"], site["responsible"]) == ("three (renamed)", "backfilled", "赵 (新任)")
    kinds = [(e["kind"], e["actor"]) for e in store.ledger.history("S03")]
    assert kinds == [("registered", "configs/sites.yaml"), ("edited", "ops-li"),
                     ("status_changed", "configs/sites.yaml"), ("edited", "configs/sites.yaml")]


def test_status_changes_say_when_who_and_why(store):
    store.ledger.sync([CONFIG_ROW])
    with pytest.raises(StoreError, match="needs a reason"):
        store.ledger.change_status("S03", "breached", "patrol-lead", "")
    with pytest.raises(StoreError, match="not one of"):
        store.ledger.change_status("S03", "open", "patrol-lead", "x")
    store.ledger.change_status("S03", "breached", "patrol-lead", "concrete seal broken open", "2026-11-30")
    store.ledger.change_status("S03", "resealed", "ops-li", "sealed again with steel plate", "2026-12-01")
    site = store.ledger.get("S03")
    assert site["status"] == "resealed" and site["sealed_on"] == "2026-12-01"
    changes = [e["detail"] for e in store.ledger.history("S03") if e["kind"] == "status_changed"]
    assert changes == [{"from": "sealed", "to": "breached", "on": "2026-11-30", "reason": "concrete seal broken open"},
                       {"from": "breached", "to": "resealed", "on": "2026-12-01",
                        "reason": "sealed again with steel plate"}]


def test_a_countys_spreadsheet_loads_row_by_row_and_exports_again(store):
    store.ledger.sync([CONFIG_ROW])
    spreadsheet = ("\ufeffid,name,township,lon,lat,status,sealed_on,responsible,unit\r\n"
                   "S03,three,t,110.2,34.2,breached,2024-01-02,李,t 安监站\r\n"
                   "S09,九号硐,t,110.3,34.3,sealed,2025-06-01,周,t 安监站\r"  # a bare CR ends a line too
                   "S10,bad,t,not-a-number,34.3,sealed,,吴,\r\n"
                   "s11,lower case id,t,110.1,34.1,sealed,,吴,\r\n")
    result = store.ledger.import_csv(spreadsheet, "ops-li")
    assert result["added"] == ["S09"] and result["updated"] == ["S03"]
    assert [(e["line"], e["reason"].split(":")[0]) for e in result["errors"]] == [(4, "lon"), (5, "id 's11' is not a site id (A-Z, 0-9, '-')")]
    assert store.ledger.get("S03")["status"] == "breached"
    exported = store.ledger.export_csv().splitlines()
    assert exported[0] == "id,name,township,lon,lat,status,sealed_on,responsible,unit"
    assert [line.split(",")[0] for line in exported[1:]] == ["S01", "S02", "S03", "S09"]
    with pytest.raises(StoreError, match="missing"):
        store.ledger.import_csv("id,name\r\nS01,x\r\n", "ops-li")


def test_a_visit_that_finds_a_problem_is_tracked_to_close_out(store):
    now = time.time()
    visit = store.patrols.record_visit("S01", "patrol-wang", now, "fresh footprints and a cut lock", ["photo:x"],
                                       110.0, 34.0, problem=True)
    [problem] = store.patrols.problems(state="open")
    assert visit["problem_id"] == problem["id"] and problem["found_by"] == "patrol-wang"
    with pytest.raises(StoreError, match="needs it rectified"):
        store.patrols.advance_problem(problem["id"], "close", "ops-li", "done")
    with pytest.raises(StoreError, match="needs a note"):
        store.patrols.advance_problem(problem["id"], "rectify", "patrol-wang", " ")
    store.patrols.advance_problem(problem["id"], "rectify", "patrol-wang", "new lock, entrance welded")
    closed = store.patrols.advance_problem(problem["id"], "close", "ops-li", "checked on site: 销号")
    assert (closed["state"], closed["rectified_by"], closed["closed_by"]) == ("closed", "patrol-wang", "ops-li")
    with pytest.raises(StoreError, match="no site"):
        store.patrols.record_visit("S99", "patrol-wang", now, "", [])


def test_coverage_counts_the_last_seven_days_against_each_status(store):
    now = time.time()
    for days_ago in (1, 2, 3, 9):
        store.patrols.record_visit("S01", "p", now - days_ago * 86400, "", [])
    store.patrols.record_visit("S02", "p", now - 86400, "", [])
    rows = {r["site_id"]: r for r in store.patrols.coverage(now, {"default": 3})}
    assert (rows["S01"]["visits_7d"], rows["S01"]["overdue"]) == (3, False)
    assert (rows["S02"]["visits_7d"], rows["S02"]["overdue"]) == (1, True)
    assert rows["S02"]["required_7d"] == 3
    assert {r["site_id"]: r["overdue"] for r in store.patrols.coverage(now, {"default": 3, "sealed": 1})} == {
        "S01": False, "S02": False}
    [township] = store.patrols.monthly_round(now, CLOCK)
    assert (township["sites"], township["visited"], township["complete"]) == (2, 2, True)


def test_a_tip_off_is_verified_and_rewarded_by_two_people(store):
    tip = store.tipoffs.receive(channel="hotline", received_by="hotline", text="trucks at the old shaft at night",
                                lon=110.0, lat=34.0, contact_sealed="sealed-blob")
    assert (tip["state"], tip["reward_state"]) == ("received", "none")
    with pytest.raises(StoreError, match="needs it verifying"):
        store.tipoffs.verification(tip["id"], "verify", "patrol-wang", "seen")
    store.tipoffs.verification(tip["id"], "start_verifying", "patrol-wang")
    with pytest.raises(StoreError, match="needs its site"):
        store.tipoffs.verification(tip["id"], "verify", "patrol-wang", "fresh tracks, generator found")
    store.tipoffs.verification(tip["id"], "verify", "patrol-wang", "fresh tracks, generator found", site_id="S01")
    with pytest.raises(StoreError, match="whole number"):
        store.tipoffs.reward(tip["id"], "propose", "ops-li", 0)
    store.tipoffs.reward(tip["id"], "propose", "ops-li", 2000)
    with pytest.raises(StoreError, match="someone other"):
        store.tipoffs.reward(tip["id"], "approve", "ops-li")
    store.tipoffs.reward(tip["id"], "approve", "admin-zhao")
    paid = store.tipoffs.reward(tip["id"], "pay", "ops-li")
    assert (paid["site_id"], paid["reward_state"], paid["reward_yuan"], paid["reward_approved_by"]) == (
        "S01", "paid", 2000, "admin-zhao")
    unfounded = store.tipoffs.receive(channel="console", received_by="duty", text="noise", site_id="S02")
    store.tipoffs.verification(unfounded["id"], "start_verifying", "p")
    store.tipoffs.verification(unfounded["id"], "unfounded", "p", "a licensed road crew")
    with pytest.raises(StoreError, match="only a verified"):
        store.tipoffs.reward(unfounded["id"], "propose", "ops-li", 100)
