"""Quality of the power rules on GENERATED series (tests/sim/power.py): precision, recall
and delay per kind, and false signals per 1,000 meter-days on clean series. The figures
that count are on real metered series (tests/bench/power_real.py); this one checks every
kind of finding end to end, including those real data has no labels for. Run: `make bench-power`."""

from __future__ import annotations

import random
import statistics
import time
from collections import defaultdict

from detectors.power import PowerFinding, PowerRules, check_silence, new_state, observe
from detectors.timeofday import LocalClock
from tests.sim.power import STEP, Anomaly, generate, make_meters

START = LocalClock().epoch(2026, 4, 1)  # anomalies from May: irrigation in season
WARMUP_DAYS = 35  # every day type's references and 14 calibrated nights
GRACE_INTERVALS = 4


def run_rules(series, rules: PowerRules, clock: LocalClock) -> list[PowerFinding]:
    """Time-major, as the agent sees a county: every meter's interval, then the hourly silence check."""
    states = {s.spec.meter_id: new_state() for s in series}
    findings: list[PowerFinding] = []
    n = len(series[0].readings)
    for i in range(n):
        for s in series:
            ts, kw, register = s.readings[i]
            if kw is None:
                continue
            found = observe(s.spec, rules, clock, states[s.spec.meter_id], ts, power_kw=kw, register_kwh=register)
            if found:
                findings += found
        if i % 4 == 3:
            now = series[0].readings[i][0]
            for s in series:
                f = check_silence(s.spec, rules, states[s.spec.meter_id], now)
                if f is not None:
                    findings.append(f)
    return findings


def score(findings: list[PowerFinding], labels: list[Anomaly]) -> dict:
    by_meter = defaultdict(list)
    for a in labels:
        by_meter[a.meter_id].append(a)

    def label_for(f: PowerFinding) -> Anomaly | None:
        for a in by_meter.get(f.meter_id, []):
            if a.start <= f.ts <= a.end + GRACE_INTERVALS * STEP:
                return a
        return None

    true_pos = [f for f in findings if label_for(f) is not None]
    report = {"findings": len(findings), "true_positive": len(true_pos),
              "precision": len(true_pos) / len(findings) if findings else 1.0, "kinds": {}}
    for kind in sorted({a.kind for a in labels}):
        labelled = [a for a in labels if a.kind == kind]
        delays, any_rule = [], 0
        for a in labelled:
            hits = [f for f in findings if f.meter_id == a.meter_id and a.start <= f.ts <= a.end + GRACE_INTERVALS * STEP]
            if hits:
                any_rule += 1
            same = [f for f in hits if f.kind == kind]
            if same:
                delays.append(int((min(f.ts for f in same) - a.start) // STEP) + 1)
        own = [f for f in findings if f.kind == kind]
        own_true = [f for f in own if label_for(f) is not None]
        report["kinds"][kind] = {
            "labelled": len(labelled),
            "recall": len(delays) / len(labelled),
            "recall_any_rule": any_rule / len(labelled),
            "within_2_intervals": sum(d <= 2 for d in delays) / len(labelled),
            "median_delay_intervals": statistics.median(delays) if delays else None,
            "precision": len(own_true) / len(own) if own else None,
        }
    return report


def main(meters: int = 200, days: int = 75, seed: int = 42) -> dict:
    rules, clock = PowerRules(), LocalClock()
    specs = make_meters(meters, random.Random(seed))
    t = time.perf_counter()
    clean, _ = generate(specs, days, START, seed, anomalies_per_meter=0.0, warmup_days=WARMUP_DAYS)
    clean_findings = run_rules(clean, rules, clock)
    meter_days = meters * (days - WARMUP_DAYS)  # after the warm-up
    dirty, labels = generate(specs, days, START, seed + 1, anomalies_per_meter=1.5, warmup_days=WARMUP_DAYS)
    findings = run_rules(dirty, rules, clock)
    report = score(findings, labels)
    report["clean"] = {"meter_days": meter_days, "false_signals": len(clean_findings),
                       "per_1000_meter_days": 1000 * len(clean_findings) / meter_days,
                       "by_kind": dict(sorted(_count(clean_findings).items()))}
    report["seconds"] = round(time.perf_counter() - t, 1)
    return report


def _count(findings):
    out = defaultdict(int)
    for f in findings:
        out[f.kind] += 1
    return out


def print_report(report: dict) -> None:
    print(f"power rules quality: {report['findings']} signals on labelled series, "
          f"precision {report['precision']:.3f}")
    print(f"{'kind':28} {'labelled':>8} {'recall':>7} {'≤2 int.':>8} {'any rule':>9} {'delay p50':>9} {'precision':>9}")
    for kind, k in report["kinds"].items():
        p = f"{k['precision']:.3f}" if k["precision"] is not None else "-"
        d = f"{k['median_delay_intervals']}" if k["median_delay_intervals"] is not None else "-"
        print(f"{kind:28} {k['labelled']:>8} {k['recall']:>7.3f} {k['within_2_intervals']:>8.3f} "
              f"{k['recall_any_rule']:>9.3f} {d:>9} {p:>9}")
    c = report["clean"]
    print(f"clean series: {c['false_signals']} false signals in {c['meter_days']} meter-days = "
          f"{c['per_1000_meter_days']:.2f} per 1,000 meter-days {c['by_kind']}")


if __name__ == "__main__":
    print_report(main())
