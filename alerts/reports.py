"""The weekly ledger list (台账清单) for the county office: what happened in one ISO week,
from the store, as an XLSX workbook (openpyxl) and as a CSV.

Sheets (and CSV sections): incidents of the week per township with their dispositions;
patrol coverage (visits per site against what is required, overdue sites); ledger changes
and close-outs (status changes, edits, problems closed out, 销号); tip-offs and rewards;
and a summary of the totals. Weeks are ISO weeks of the county's local time (Monday to
Sunday), e.g. ``2026-W49``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass, field
from typing import Any

from alerts.store import AlertStore
from detectors.timeofday import LocalClock

WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


def week_bounds(week: str, clock: LocalClock) -> tuple[float, float]:
    """UTC epoch seconds of the week's first local midnight and of the next week's."""
    match = WEEK.match(week)
    if not match:
        raise ValueError(f"week {week!r} is not an ISO week such as 2026-W49")
    monday = dt.date.fromisocalendar(int(match[1]), int(match[2]), 1)
    start = clock.epoch(monday.year, monday.month, monday.day)
    return start, start + 7 * 86400


def week_of(ts: float, clock: LocalClock) -> str:
    local = clock.local(ts)
    year, number, _ = dt.date(local.tm_year, local.tm_mon, local.tm_mday).isocalendar()
    return f"{year}-W{number:02d}"


@dataclass
class Sheet:
    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)


@dataclass
class WeeklyReport:
    week: str
    county: str
    sheets: list[Sheet]

    def sheet(self, title: str) -> Sheet:
        return next(s for s in self.sheets if s.title == title)


def weekly_report(store: AlertStore, week: str, clock: LocalClock, county: str, weekly_visits: dict[str, int],
                  ) -> WeeklyReport:
    start, end = week_bounds(week, clock)

    def when(ts: float | None) -> str:
        if ts is None:
            return ""
        t = clock.local(ts)
        return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d} {t.tm_hour:02d}:{t.tm_min:02d}"

    sites = {s["id"]: s for s in store.ledger.sites()}
    incidents = [i for i in store.incidents.ranked(("new", "acknowledged", "dispatched", "resolved"))
                 if start <= min((i["draft"].get("severity_at") or {}).values(), default=i["received_at"]) < end]
    incident_sheet = Sheet("incidents", ["township", "site", "site name", "incident", "severity", "score", "state",
                                         "disposition", "happened", "sources"])
    for i in sorted(incidents, key=lambda i: (i["township"] or "", i["site_id"], i["opened_at"])):
        incident_sheet.rows.append([i["township"], i["site_id"], i["site_name"], i["id"], i["severity"],
                                    round(i["score"], 2), i["state"], i["disposition"] or "", when(i["opened_at"]),
                                    ", ".join(sorted(i["draft"]["strongest"]))])

    week_visits = store.patrols.visits(since=start, until=end)
    coverage = Sheet("coverage", ["township", "site", "site name", "visits this week", "required", "overdue",
                                  "last visit"])
    for site in sorted(sites.values(), key=lambda s: (s["township"], s["id"])):
        done = sum(1 for v in week_visits if v["site_id"] == site["id"])
        required = weekly_visits.get(site["status"], weekly_visits.get("default", 3))
        last = max((v["at"] for v in week_visits if v["site_id"] == site["id"]), default=None)
        coverage.rows.append([site["township"], site["id"], site["name"], done, required,
                              "yes" if done < required else "no", when(last)])

    ledger = Sheet("ledger", ["when", "site", "change", "who", "detail"])
    for event in store.ledger.changes_between(start, end):
        ledger.rows.append([when(event["at"]), event["site_id"], event["kind"], event["actor"], event["note"]])
    for problem in store.patrols.problems():
        for kind, at, who, note in (("problem found", problem["found_at"], problem["found_by"], problem["description"]),
                                    ("rectified", problem["rectified_at"], problem["rectified_by"],
                                     problem["rectification"]),
                                    ("closed out (销号)", problem["closed_at"], problem["closed_by"],
                                     problem["close_note"])):
            if at is not None and start <= at < end:
                ledger.rows.append([when(at), problem["site_id"], kind, who, note or ""])
    ledger.rows.sort(key=lambda r: r[0])

    tips = Sheet("tip-offs", ["received", "channel", "site", "state", "verified by", "reward state", "reward (yuan)",
                              "approved by"])
    for tip in sorted(store.tipoffs.all(since=start, until=end), key=lambda t: t["received_at"]):
        tips.rows.append([when(tip["received_at"]), tip["channel"], tip["site_id"] or "", tip["state"],
                          tip["verified_by"] or "", tip["reward_state"], tip["reward_yuan"] or 0,
                          tip["reward_approved_by"] or ""])

    summary = Sheet("summary", ["item", "value"], [
        ["county", county], ["week", week], ["from", when(start)], ["to", when(end)],
        ["incidents", len(incident_sheet.rows)],
        ["incidents confirmed as illegal mining",
         sum(1 for i in incidents if i["disposition"] == "illegal_mining_confirmed")],
        ["patrol visits", len(week_visits)],
        ["sites overdue", sum(1 for r in coverage.rows if r[5] == "yes")],
        ["ledger changes and close-out steps", len(ledger.rows)],
        ["tip-offs", len(tips.rows)],
        ["tip-offs verified", sum(1 for r in tips.rows if r[3] == "verified")],
        ["rewards paid (yuan)", sum(r[6] for r in tips.rows if r[5] == "paid")],
    ])
    return WeeklyReport(week, county, [summary, incident_sheet, coverage, ledger, tips])


def to_xlsx(report: WeeklyReport) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    book.remove(book.active)
    for sheet in report.sheets:
        ws = book.create_sheet(sheet.title)
        ws.append(sheet.columns)
        for cell in ws[1]:
            cell.font = Font(bold=True)
        for row in sheet.rows:
            ws.append(row)
        for column in ws.columns:
            width = max(len(str(c.value or "")) for c in column)
            ws.column_dimensions[column[0].column_letter].width = min(60, max(10, width + 2))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def to_csv(report: WeeklyReport) -> str:
    """One CSV: a section column names the sheet each row belongs to."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for sheet in report.sheets:
        writer.writerow(["section", *sheet.columns])
        for row in sheet.rows:
            writer.writerow([sheet.title, *row])
        writer.writerow([])
    return "\ufeff" + out.getvalue()  # the BOM makes a spreadsheet read it as UTF-8


# --------------------------------------------------------------------------- sending


def send_weekly(store: AlertStore, week: str, clock: LocalClock, county: str, weekly_visits: dict[str, int],
                webhook_url: str | None = None, webhook_token: str | None = None, mail=None) -> dict[str, str]:
    """Build the week's report and send it to each destination not yet served (at least
    once: a failed destination is tried again at the next run). Blocking: run it off the
    event loop. Returns destination -> sent, skipped or failed."""
    destinations = ([webhook_url] if webhook_url else []) + ([f"mail:{','.join(mail.recipients)}"] if mail else [])
    todo = [d for d in destinations if not store.reports.sent("weekly", week, d)]
    results = {d: "skipped" for d in destinations if d not in todo}
    if not todo:
        return results
    report = weekly_report(store, week, clock, county, weekly_visits)
    xlsx, text = to_xlsx(report), to_csv(report)
    name = f"ledger-{week}"
    for destination in todo:
        try:
            if destination.startswith("mail:"):
                _mail(mail, f"{county} 台账清单 {week}", xlsx, text, name)
            else:
                _post(destination, webhook_token, xlsx, text, name, week)
            status = "sent"
        except Exception:  # noqa: BLE001 - any failure: recorded, tried again next time
            status = "failed"
        store.reports.record("weekly", week, destination, status)
        results[destination] = status
    return results


def _post(url: str, token: str | None, xlsx: bytes, text: str, name: str, week: str) -> None:
    import urllib.request
    import uuid

    boundary = uuid.uuid4().hex
    parts = []
    for filename, content_type, data in ((f"{name}.xlsx", "application/vnd.openxmlformats-officedocument."
                                          "spreadsheetml.sheet", xlsx), (f"{name}.csv", "text/csv", text.encode())):
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{filename}"\r\n'
                     f"Content-Type: {content_type}\r\n\r\n".encode() + data + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}", "Idempotency-Key": f"weekly:{week}"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        if not 200 <= response.status < 300:
            raise RuntimeError(f"HTTP {response.status}")


def _mail(relay, subject: str, xlsx: bytes, text: str, name: str) -> None:
    import smtplib
    from email.message import EmailMessage

    message = EmailMessage()
    message["Subject"], message["From"], message["To"] = subject, relay.sender, ", ".join(relay.recipients)
    message.set_content(f"{subject}: see the attached workbook (and the same as CSV).")
    message.add_attachment(xlsx, maintype="application",
                           subtype="vnd.openxmlformats-officedocument.spreadsheetml.sheet", filename=f"{name}.xlsx")
    message.add_attachment(text.encode(), maintype="text", subtype="csv", filename=f"{name}.csv")
    with smtplib.SMTP(relay.host, relay.port, timeout=30) as smtp:
        smtp.send_message(message)
