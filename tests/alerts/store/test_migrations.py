"""Several processes starting at once on a new store (two workers and the server of `make
run`) each migrate it and sync the ledger from configs/: one creates the schema and the
sites, the others wait and find them there. A CI run saw the second worker die with
"table sites already exists", the scaling bench a third with "UNIQUE constraint failed:
sites.id"."""

from __future__ import annotations

import subprocess
import sys

import pytest
import sqlalchemy as sa

from alerts.store import AlertStore
from tests.helpers import REPO

SITE = {"id": "S01", "name": "one", "township": "t", "lon": 110.0, "lat": 34.0, "status": "sealed",
        "sealed_on": "2023-05-12", "responsible": "王建国", "unit": ""}
MIGRATE = f"import sys; from alerts.store import AlertStore; AlertStore(sys.argv[1]).migrate([{SITE!r}])"


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_processes_migrating_a_new_store_at_once_all_succeed(kind, tmp_path, request):
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'alerts.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
        with sa.create_engine(url).begin() as c:
            c.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    procs = [subprocess.Popen([sys.executable, "-c", MIGRATE, url], cwd=REPO, stderr=subprocess.PIPE)
             for _ in range(4)]
    results = [(p.wait(120), p.stderr.read().decode()[-600:]) for p in procs]
    assert [rc for rc, _ in results] == [0, 0, 0, 0], results
    store = AlertStore(url)
    with store.engine.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar() == 1
    assert [s["id"] for s in store.ledger.sites()] == ["S01"]
    assert [e["kind"] for e in store.ledger.history("S01")].count("registered") == 1
    store.migrate([SITE])  # and once more: nothing to do
    assert [e["kind"] for e in store.ledger.history("S01")].count("registered") == 1
