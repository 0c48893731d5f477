"""The power rules meet the issue's quality targets on seeded, labelled series
(the full report, on a larger county, is `make bench-power`)."""

from __future__ import annotations

from tests.bench.power_quality import main


def test_quality_targets():
    report = main(meters=100, days=30, seed=7)
    kinds = report["kinds"]
    assert kinds["reconnection"]["labelled"] >= 20
    assert kinds["reconnection"]["within_2_intervals"] >= 0.95
    assert report["clean"]["per_1000_meter_days"] <= 1.0
    assert report["precision"] >= 0.95
    for kind, k in kinds.items():
        assert k["recall_any_rule"] >= 0.9, (kind, k)
