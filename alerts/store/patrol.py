"""Patrol work in the store: visits to sites (who, when, where, what was found, photos),
the problems they find tracked to close-out (销号: found -> rectified -> closed, each step
with who and when), and coverage — visits per site in the last 7 days against what its
status requires, and the monthly round of every site of a township."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from alerts.store.schema import StoreError, advance, problems, sites, visits, write_audit
from detectors.timeofday import LocalClock

WEEK_S = 7 * 86400
PROBLEM_STEPS = {"rectify": ("open", "rectified"), "close": ("rectified", "closed")}


class Patrols:
    def __init__(self, engine: sa.Engine):
        self.engine = engine

    # ------------------------------------------------------------------ visits

    def record_visit(self, site_id: str, visitor: str, at: float, finding: str, photos: list[str],
                     lon: float | None = None, lat: float | None = None, problem: bool = False) -> dict:
        """A visit; with ``problem`` its finding is also a problem to rectify and close out."""
        if problem and not finding.strip():
            raise StoreError("a problem needs a description of what was found")
        with self.engine.begin() as c:
            if c.execute(sa.select(sites.c.id).where(sites.c.id == site_id)).first() is None:
                raise StoreError(f"no site {site_id}")
            problem_id = None
            if problem:
                problem_id = c.execute(problems.insert().values(
                    site_id=site_id, found_at=at, found_by=visitor, description=finding.strip(),
                    state="open")).inserted_primary_key[0]
            visit_id = c.execute(visits.insert().values(
                site_id=site_id, visitor=visitor, at=at, lon=lon, lat=lat, finding=finding.strip(), photos=photos,
                problem_id=problem_id)).inserted_primary_key[0]
            write_audit(c, None, visitor, "visit_recorded", {"site_id": site_id, "visit_id": visit_id,
                                                             "problem_id": problem_id})
            return dict(c.execute(sa.select(visits).where(visits.c.id == visit_id)).first()._mapping)

    def visits(self, site_id: str | None = None, since: float = 0.0, until: float = float("inf")) -> list[dict]:
        query = sa.select(visits).where(visits.c.at >= since, visits.c.at < until).order_by(visits.c.at.desc())
        if site_id:
            query = query.where(visits.c.site_id == site_id)
        with self.engine.connect() as c:
            return [dict(r._mapping) for r in c.execute(query)]

    # ------------------------------------------------------------------ problems

    def problems(self, state: str | None = None, site_id: str | None = None) -> list[dict]:
        query = sa.select(problems).order_by(problems.c.found_at.desc())
        if state:
            query = query.where(problems.c.state == state)
        if site_id:
            query = query.where(problems.c.site_id == site_id)
        with self.engine.connect() as c:
            return [dict(r._mapping) for r in c.execute(query)]

    def advance_problem(self, problem_id: int, step: str, actor: str, note: str) -> dict:
        """``rectify`` (open -> rectified: what was done) or ``close`` (rectified -> closed:
        the close-out, 销号), each with who, when and a note; audited."""
        if not note.strip():
            raise StoreError(f"{step} needs a note (what was done, or why it is closed)")
        now = time.time()
        values = ({"rectified_at": now, "rectified_by": actor, "rectification": note} if step == "rectify"
                  else {"closed_at": now, "closed_by": actor, "close_note": note})
        with self.engine.begin() as c:
            row, written = advance(c, problems, problem_id, "state", PROBLEM_STEPS, step, "problem",
                                   lambda row: values)
            write_audit(c, None, actor, f"problem_{written['state']}", {"problem_id": problem_id,
                                                                       "site_id": row["site_id"], "note": note})
            return dict(c.execute(sa.select(problems).where(problems.c.id == problem_id)).first()._mapping)

    def link_problem(self, problem_id: int, signal_id: str) -> None:
        """The evidence a problem became (its signal id, once sent to fusion)."""
        with self.engine.begin() as c:
            c.execute(problems.update().where(problems.c.id == problem_id).values(signal_id=signal_id))

    # ------------------------------------------------------------------ coverage

    def coverage(self, now: float, weekly: dict[str, int]) -> list[dict]:
        """Per site: visits in the last 7 days against what its status requires (``weekly``:
        status -> visits a week, ``default`` for the rest), and whether it is overdue."""
        with self.engine.connect() as c:
            counts = dict(c.execute(sa.select(visits.c.site_id, sa.func.count()).where(visits.c.at > now - WEEK_S)
                                    .group_by(visits.c.site_id)).all())
            last = dict(c.execute(sa.select(visits.c.site_id, sa.func.max(visits.c.at)).group_by(visits.c.site_id)).all())
            rows = c.execute(sa.select(sites.c.id, sites.c.name, sites.c.township, sites.c.status)
                             .order_by(sites.c.id)).all()
        out = []
        for site in rows:
            required = weekly.get(site.status, weekly.get("default", 3))
            done = counts.get(site.id, 0)
            out.append({"site_id": site.id, "name": site.name, "township": site.township, "status": site.status,
                        "visits_7d": done, "required_7d": required, "overdue": done < required,
                        "last_visit_at": last.get(site.id)})
        return out

    def monthly_round(self, now: float, clock: LocalClock) -> list[dict]:
        """Per township: how many of its sites were visited in this (local) month; the round
        is complete when every one was."""
        local = clock.local(now)
        month_start = clock.epoch(local.tm_year, local.tm_mon, 1)
        with self.engine.connect() as c:
            visited = {r.site_id for r in c.execute(sa.select(visits.c.site_id).where(visits.c.at >= month_start)
                                                    .distinct())}
            rows = c.execute(sa.select(sites.c.id, sites.c.township)).all()
        townships: dict[str, dict[str, Any]] = {}
        for site in rows:
            entry = townships.setdefault(site.township, {"township": site.township, "sites": 0, "visited": 0,
                                                         "not_visited": []})
            entry["sites"] += 1
            if site.id in visited:
                entry["visited"] += 1
            else:
                entry["not_visited"].append(site.id)
        for entry in townships.values():
            entry["complete"] = entry["visited"] == entry["sites"]
            entry["month"] = time.strftime("%Y-%m", local)
        return sorted(townships.values(), key=lambda e: e["township"])
