"""The shaft ledger (台账) in the store: every site with its facts (name, township,
coordinates, sealing status and date, responsible person and unit), each change with who,
when and why, and CSV in and out so a county can load the spreadsheet it keeps today.

configs/sites.yaml seeds the ledger and stays a way to change it: at each start the
worker applies to a site only the fields whose value in the file changed since the file
was last applied (the file's last values are kept as ``config_applied`` events), so an
edit made in the console is not undone by a file that did not change that field.
"""

from __future__ import annotations

import csv
import io
import re
import time
from typing import Any

import sqlalchemy as sa

from alerts.store.schema import NotFound, StoreError, site_events, sites, visits, write_audit
from detectors.geometry import metres_between

STATUSES = ("sealed", "resealed", "closed", "backfilled", "breached", "active_licensed")
EDITABLE = ("name", "township", "lon", "lat", "sealed_on", "responsible", "unit")
CSV_COLUMNS = ("id", "name", "township", "lon", "lat", "status", "sealed_on", "responsible", "unit")
CONFIG_ACTOR = "configs/sites.yaml"
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _checked(field: str, value: Any) -> Any:
    """A field's value as the ledger keeps it, or StoreError saying what is wrong."""
    if field in ("lon", "lat"):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise StoreError(f"{field}: {value!r} is not a number") from None
        bound = 180 if field == "lon" else 90
        if not -bound <= number <= bound:
            raise StoreError(f"{field}: {number} is outside -{bound}..{bound}")
        return number
    if field == "sealed_on":
        if value in (None, ""):
            return None
        if not DATE.match(str(value)):
            raise StoreError(f"sealed_on: {value!r} is not a date YYYY-MM-DD")
        return str(value)
    if field == "status":
        if value not in STATUSES:
            raise StoreError(f"status: {value!r} is not one of {list(STATUSES)}")
        return value
    text = "" if value is None else str(value).strip()
    if field in ("name", "township", "responsible") and not text:
        raise StoreError(f"{field} must not be empty")
    return text


class Ledger:
    def __init__(self, engine: sa.Engine):
        self.engine = engine

    # ------------------------------------------------------------------ the file

    def sync(self, ledger: list[dict[str, Any]]) -> None:
        """Sites from configs/: new ones registered; for known ones, each field whose value
        in the file changed since the file was last applied (history is kept)."""
        with self.engine.begin() as c:
            existing = {r.id: dict(r._mapping) for r in c.execute(sa.select(sites))}
            last_applied = {}
            for row in c.execute(sa.select(site_events.c.site_id, site_events.c.detail)
                                 .where(site_events.c.kind == "config_applied").order_by(site_events.c.id)):
                last_applied[row.site_id] = row.detail or {}
            for site in ledger:
                now = time.time()
                row = existing.get(site["id"])
                if row is None:
                    c.execute(sites.insert().values(**site))
                    c.execute(site_events.insert().values(site_id=site["id"], at=now, kind="registered",
                                                          note=f"status {site['status']}", actor=CONFIG_ACTOR))
                else:
                    before = last_applied.get(site["id"], {})
                    changed = {k: v for k, v in site.items() if k != "id" and before.get(k) != v and row.get(k) != v}
                    if changed:
                        c.execute(sites.update().where(sites.c.id == site["id"]).values(**changed))
                        if "status" in changed:
                            c.execute(site_events.insert().values(
                                site_id=site["id"], at=now, kind="status_changed", actor=CONFIG_ACTOR,
                                note=f"{row['status']} -> {changed['status']}",
                                detail={"from": row["status"], "to": changed["status"], "reason": "config file"}))
                        others = {k: [row.get(k), v] for k, v in changed.items() if k != "status"}
                        if others:
                            c.execute(site_events.insert().values(site_id=site["id"], at=now, kind="edited",
                                                                  note=", ".join(others), actor=CONFIG_ACTOR,
                                                                  detail=others))
                if last_applied.get(site["id"]) != site:
                    c.execute(site_events.insert().values(site_id=site["id"], at=now, kind="config_applied",
                                                          note="", actor=CONFIG_ACTOR, detail=site))

    # ------------------------------------------------------------------ reading

    def sites(self) -> list[dict]:
        """Every site, with when it was last visited by a patrol."""
        last_visit = (sa.select(visits.c.site_id, sa.func.max(visits.c.at).label("last_visit_at"))
                      .group_by(visits.c.site_id).subquery())
        with self.engine.connect() as c:
            return [dict(r._mapping) for r in c.execute(
                sa.select(sites, last_visit.c.last_visit_at)
                .select_from(sites.outerjoin(last_visit, last_visit.c.site_id == sites.c.id)).order_by(sites.c.id))]

    def get(self, site_id: str) -> dict | None:
        return next((s for s in self.sites() if s["id"] == site_id), None)

    def nearest(self, lon: float, lat: float, within_m: float) -> str | None:
        """The site nearest a position, if one is within ``within_m`` metres."""
        with self.engine.connect() as c:
            rows = c.execute(sa.select(sites.c.id, sites.c.lon, sites.c.lat)).all()
        distance, site_id = min(((metres_between((lon, lat), (r.lon, r.lat)), r.id) for r in rows),
                                default=(float("inf"), None))
        return site_id if distance <= within_m else None

    def history(self, site_id: str) -> list[dict]:
        """What happened to a site, oldest first (the file's bookkeeping left out)."""
        with self.engine.connect() as c:
            rows = c.execute(sa.select(site_events).where(site_events.c.site_id == site_id,
                                                          site_events.c.kind != "config_applied")
                             .order_by(site_events.c.at, site_events.c.id))
            return [dict(r._mapping) for r in rows]

    def changes_between(self, start: float, end: float) -> list[dict]:
        """Status changes and edits of every site in [start, end)."""
        with self.engine.connect() as c:
            rows = c.execute(sa.select(site_events).where(
                site_events.c.at >= start, site_events.c.at < end,
                site_events.c.kind.in_(("status_changed", "edited", "registered")))
                .order_by(site_events.c.at))
            return [dict(r._mapping) for r in rows]

    # ------------------------------------------------------------------ edits

    def edit(self, site_id: str, changes: dict[str, Any], actor: str, reason: str = "") -> dict:
        """Change a site's facts (not its status: ``change_status``); audited."""
        unknown = sorted(set(changes) - set(EDITABLE))
        if unknown:
            raise StoreError(f"cannot edit {unknown}; editable: {list(EDITABLE)} (status has its own action)")
        checked = {field: _checked(field, value) for field, value in changes.items()}
        with self.engine.begin() as c:
            row = c.execute(sa.select(sites).where(sites.c.id == site_id)).first()
            if row is None:
                raise NotFound(f"no site {site_id}")
            before = dict(row._mapping)
            changed = {k: [before[k], v] for k, v in checked.items() if before[k] != v}
            if changed:
                c.execute(sites.update().where(sites.c.id == site_id).values(**{k: v[1] for k, v in changed.items()}))
                c.execute(site_events.insert().values(site_id=site_id, at=time.time(), kind="edited",
                                                      note=reason or ", ".join(changed), actor=actor, detail=changed))
                write_audit(c, None, actor, "site_edited", {"site_id": site_id, "changed": changed, "reason": reason})
        return self.get(site_id)

    def change_status(self, site_id: str, status: str, actor: str, reason: str, on_date: str | None = None) -> dict:
        """A status change (sealed, resealed, backfilled, breached, ...) with its date, who
        and why; a reason is required."""
        status = _checked("status", status)
        on_date = _checked("sealed_on", on_date) or time.strftime("%Y-%m-%d", time.gmtime())
        if not reason.strip():
            raise StoreError("a status change needs a reason")
        with self.engine.begin() as c:
            row = c.execute(sa.select(sites).where(sites.c.id == site_id)).first()
            if row is None:
                raise NotFound(f"no site {site_id}")
            values: dict[str, Any] = {"status": status}
            if status in ("sealed", "resealed"):
                values["sealed_on"] = on_date
            c.execute(sites.update().where(sites.c.id == site_id).values(**values))
            detail = {"from": row.status, "to": status, "on": on_date, "reason": reason}
            c.execute(site_events.insert().values(site_id=site_id, at=time.time(), kind="status_changed",
                                                  note=f"{row.status} -> {status}: {reason}", actor=actor,
                                                  detail=detail))
            write_audit(c, None, actor, "site_status_changed", {"site_id": site_id, **detail})
        return self.get(site_id)

    # ------------------------------------------------------------------ CSV

    def export_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(CSV_COLUMNS)
        for site in self.sites():
            writer.writerow(["" if site[k] is None else site[k] for k in CSV_COLUMNS])
        return out.getvalue()

    def import_csv(self, text: str, actor: str) -> dict[str, Any]:
        """Rows of a county's spreadsheet (the export's columns; a UTF-8 BOM and any line
        endings are fine): new sites registered, known ones edited and their status changed
        where it differs. Each row on its own: a bad row is reported, the others apply."""
        try:
            reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""))
            header = reader.fieldnames or []
        except csv.Error as exc:
            raise StoreError(f"not CSV: {exc}") from None
        missing = [c for c in ("id", "name", "township", "lon", "lat", "status", "responsible") if c not in header]
        unknown = [c for c in header if c not in CSV_COLUMNS]
        if missing or unknown:
            raise StoreError(f"the header needs {list(CSV_COLUMNS)}; missing {missing}, unknown {unknown}")
        added, updated, errors = [], [], []
        known = {s["id"] for s in self.sites()}
        try:
            rows = list(reader)
        except csv.Error as exc:
            raise StoreError(f"not CSV: {exc}") from None
        for number, row in enumerate(rows, start=2):  # line 1 is the header
            try:
                site_id = (row.get("id") or "").strip()
                if not re.match(r"^[A-Z0-9-]{2,32}$", site_id):
                    raise StoreError(f"id {site_id!r} is not a site id (A-Z, 0-9, '-')")
                fields = {k: _checked(k, row.get(k)) for k in EDITABLE if k in row}
                status = _checked("status", (row.get("status") or "").strip())
                if site_id in known:
                    self.edit(site_id, fields, actor, "CSV import")
                    if self.get(site_id)["status"] != status:
                        self.change_status(site_id, status, actor, "CSV import", fields.get("sealed_on"))
                    updated.append(site_id)
                else:
                    with self.engine.begin() as c:
                        c.execute(sites.insert().values(id=site_id, status=status, **fields))
                        c.execute(site_events.insert().values(site_id=site_id, at=time.time(), kind="registered",
                                                              note=f"status {status} (CSV import)", actor=actor))
                        write_audit(c, None, actor, "site_added", {"site_id": site_id, "via": "CSV import"})
                    known.add(site_id)
                    added.append(site_id)
            except StoreError as exc:
                errors.append({"line": number, "reason": str(exc)})
        return {"added": added, "updated": updated, "errors": errors}
