"""The alert store on the default SQLite file and on a real PostgreSQL server."""

from __future__ import annotations

import pytest

from alerts.store import AlertStore


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    """The same tests on the default SQLite file and on a real PostgreSQL server."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'alerts.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
        import sqlalchemy as sa
        with sa.create_engine(url).begin() as c:  # a clean schema for each test
            c.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    s = AlertStore(url)
    s.migrate()
    s.ledger.sync([{"id": "S01", "name": "one", "township": "t", "lon": 110.0, "lat": 34.0, "status": "sealed",
                    "sealed_on": "2023-05-12", "responsible": "王建国"},
                   {"id": "S02", "name": "two", "township": "t", "lon": 110.1, "lat": 34.1, "status": "sealed",
                    "sealed_on": None, "responsible": "x"}])
    return s
