"""The console's test county: a config with a machine client, users of each role, and a
store holding one corroborated night incident at S01 and a weak one at S02."""

from __future__ import annotations

import asyncio

import cv2
import numpy as np
import pytest

from alerts.evidence import EvidenceStore
from alerts.fusion import FusionRules
from alerts.store import AlertStore
from detectors.timeofday import LocalClock
from streams.config import load_config
from streams.kafka.admin import ensure_topics, topic_plan
from tests.alerts.console.clients import MACHINE_TOKEN, PASSWORDS
from tests.helpers import isolated_config, night_ts, without_cameras


def signal(sid: str, site: str, kind: str, name: str, strength: float, ts: float, evidence: list[str],
           source_id: str, details: dict) -> dict:
    return {"signal_id": sid, "site_id": site, "source_kind": kind, "source_id": source_id, "kind": name,
            "ts": ts, "strength": strength, "summary": f"{name} at {site}", "details": details, "evidence": evidence}


@pytest.fixture
def console_setup(kafka_bootstrap, tmp_path, monkeypatch):
    """A config, users of each role, a machine client, and a store holding one corroborated
    night incident at S01 (a camera snapshot, two readings of the cut line, a crew in the
    fence) and a weak one at S02."""
    monkeypatch.setenv("SHAFTWATCH_TOKEN_HOTLINE", MACHINE_TOKEN)
    monkeypatch.setenv("KAFKA_BOOTSTRAP", kafka_bootstrap)
    config_dir = without_cameras(isolated_config(tmp_path, "console", api_clients=[
        {"name": "hotline", "token_env": "SHAFTWATCH_TOKEN_HOTLINE", "role": "patrol"}]))
    cfg = load_config(config_dir)
    asyncio.run(ensure_topics(kafka_bootstrap, topic_plan(cfg)))
    store = AlertStore(cfg.store_url)
    store.migrate()
    from streams.worker.run import ledger_rows
    store.ledger.sync(ledger_rows(cfg))
    store.accounts.add("duty", "patrol", PASSWORDS["duty"], "test", "值班员 王")
    store.accounts.add("ops", "ops", PASSWORDS["ops"], "test", "运维 李")
    store.accounts.add("admin", "admin", PASSWORDS["admin"], "test", "管理员 赵")
    night = night_ts()
    _, jpeg = cv2.imencode(".jpg", np.full((120, 160, 3), 90, np.uint8))
    snapshot = EvidenceStore(cfg.evidence_dir).save_snapshot("CAM-S01-A", night, "person-1", jpeg.tobytes())
    crew = [f"p1:crew{i}aaaaaaaaaaaaaaa" for i in range(5)]
    store.incidents.apply_signals([
        signal("v1", "S01", "vision", "person_at_shaft", 0.9, night, [snapshot], "CAM-S01-A",
               {"labels": {"person": 3, "truck": 1}}),
        signal("p1", "S01", "power", "reconnection", 0.8, night + 60, ["power-curve:M-0001"], "M-0001",
               {"kw": 28.5}),
        signal("p2", "S01", "power", "reconnection", 0.8, night + 3600, ["power-curve:M-0001"], "M-0001",
               {"kw": 31.2}),
        signal("f1", "S01", "fence", "crew_in_zone", 0.7, night + 120, [], "FZ-JS-1",
               {"device_pids": crew, "devices": 5, "episode_start": night - 600}),
        signal("w1", "S02", "power", "baseline_deviation", 0.3, night + 12 * 3600, [], "M-0002", {"kw": 6.0}),
    ], FusionRules(), LocalClock())
    return cfg, store
