"""The alert store's tables (SQLAlchemy Core), the engine for a URL, and the audit row
every change writes. The schema itself is created and upgraded by the Alembic
migrations in alerts/migrations; these definitions must match them."""

from __future__ import annotations

import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event

metadata = sa.MetaData()

sites = sa.Table(
    "sites", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("township", sa.String(100), nullable=False),
    sa.Column("lon", sa.Float, nullable=False),
    sa.Column("lat", sa.Float, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("sealed_on", sa.String(10)),
    sa.Column("responsible", sa.String(200), nullable=False),
    sa.Column("unit", sa.String(200), nullable=False, server_default=""),  # the responsible unit
)
site_events = sa.Table(
    "site_events", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("site_id", sa.String(32), sa.ForeignKey("sites.id"), nullable=False, index=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("note", sa.Text, nullable=False, server_default=""),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("detail", sa.JSON),  # a status change: from, to, on which date, why
)
incidents = sa.Table(
    "incidents", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("site_id", sa.String(32), nullable=False, index=True),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("opened_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("draft", sa.JSON, nullable=False),
    sa.Column("disposition", sa.String(32)),
    sa.Column("note", sa.Text),
    sa.Column("silenced_by", sa.Integer),
    sa.Column("escalated_at", sa.Float),
    sa.Column("previous_incident_id", sa.String(40)),
    sa.Column("written_at", sa.Float, nullable=False),
    sa.Column("received_at", sa.Float),  # wall time its newest evidence was stored (set on every row)
    sa.Column("version", sa.Integer, nullable=False, server_default="0"),  # optimistic concurrency
)
incident_signals = sa.Table(
    "incident_signals", metadata,
    sa.Column("signal_id", sa.String(40), primary_key=True),
    sa.Column("incident_id", sa.String(40), sa.ForeignKey("incidents.id"), nullable=False, index=True),
    sa.Column("source_kind", sa.String(16), nullable=False),
    sa.Column("source_id", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("strength", sa.Float, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("details", sa.JSON, nullable=False),
    sa.Column("evidence", sa.JSON, nullable=False),
    sa.Index("ix_incident_signals_incident_ts", "incident_id", "ts"),  # an incident's newest signals (0006)
)
audit = sa.Table(
    "audit", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("incident_id", sa.String(40), index=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("detail", sa.JSON, nullable=False),
)
silences = sa.Table(
    "silences", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("site_id", sa.String(32)),
    sa.Column("source_kind", sa.String(16)),
    sa.Column("source_id", sa.String(64)),
    sa.Column("starts_at", sa.Float, nullable=False),
    sa.Column("ends_at", sa.Float, nullable=False),
    sa.Column("created_by", sa.String(100), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)
notifications = sa.Table(
    "notifications", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("incident_id", sa.String(40), nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("response", sa.Text, nullable=False, server_default=""),
    sa.UniqueConstraint("incident_id", "kind", "channel", name="uq_notification_once"),
)
users = sa.Table(
    "users", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(64), nullable=False, unique=True),
    sa.Column("display_name", sa.String(100), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("created_by", sa.String(100), nullable=False),
    sa.Column("disabled_at", sa.Float),
)
sessions = sa.Table(
    "sessions", metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # sha256 of the cookie's token: a stolen table opens nothing
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False, index=True),
    sa.Column("csrf", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)
login_attempts = sa.Table(
    "login_attempts", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(64), nullable=False, index=True),
    sa.Column("remote", sa.String(64), nullable=False, server_default=""),
    sa.Column("at", sa.Float, nullable=False, index=True),
    sa.Column("ok", sa.Boolean, nullable=False),
)
visits = sa.Table(
    "visits", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("site_id", sa.String(32), sa.ForeignKey("sites.id"), nullable=False, index=True),
    sa.Column("visitor", sa.String(100), nullable=False),
    sa.Column("at", sa.Float, nullable=False, index=True),
    sa.Column("lon", sa.Float),
    sa.Column("lat", sa.Float),
    sa.Column("finding", sa.Text, nullable=False, server_default=""),
    sa.Column("photos", sa.JSON, nullable=False),
    sa.Column("problem_id", sa.Integer),
)
problems = sa.Table(
    "problems", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("site_id", sa.String(32), sa.ForeignKey("sites.id"), nullable=False, index=True),
    sa.Column("found_at", sa.Float, nullable=False),
    sa.Column("found_by", sa.String(100), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("state", sa.String(16), nullable=False, index=True),  # open, rectified, closed (销号)
    sa.Column("rectified_at", sa.Float),
    sa.Column("rectified_by", sa.String(100)),
    sa.Column("rectification", sa.Text),
    sa.Column("closed_at", sa.Float),
    sa.Column("closed_by", sa.String(100)),
    sa.Column("close_note", sa.Text),
    sa.Column("signal_id", sa.String(40)),  # the evidence it became, when it was sent to fusion
)
tipoffs = sa.Table(
    "tipoffs", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("received_at", sa.Float, nullable=False, index=True),
    sa.Column("channel", sa.String(16), nullable=False),  # console, hotline
    sa.Column("received_by", sa.String(100), nullable=False),
    sa.Column("site_id", sa.String(32), sa.ForeignKey("sites.id"), index=True),
    sa.Column("lon", sa.Float),
    sa.Column("lat", sa.Float),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("photos", sa.JSON, nullable=False),
    sa.Column("contact_sealed", sa.Text),  # the reporter's contact, encrypted (alerts.sealing)
    sa.Column("state", sa.String(16), nullable=False, index=True),  # received, verifying, verified, unfounded
    sa.Column("verified_by", sa.String(100)),
    sa.Column("verified_at", sa.Float),
    sa.Column("verification_note", sa.Text),
    sa.Column("reward_state", sa.String(16), nullable=False),  # none, proposed, approved, paid
    sa.Column("reward_yuan", sa.Integer),
    sa.Column("reward_proposed_by", sa.String(100)),
    sa.Column("reward_approved_by", sa.String(100)),
    sa.Column("reward_paid_at", sa.Float),
    sa.Column("signal_id", sa.String(40)),
)
reports_sent = sa.Table(
    "reports_sent", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("period", sa.String(16), nullable=False),
    sa.Column("sent_at", sa.Float, nullable=False),
    sa.Column("destination", sa.String(200), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.UniqueConstraint("kind", "period", "destination", name="uq_report_once"),
)

# The carriers' CAMARA geofencing subscriptions for the watchlist (streams.edge.fence_publisher):
# subscription id -> pseudonym and zone, never the clear number it was made with.
fence_subscriptions = sa.Table(
    "fence_subscriptions", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("carrier", sa.String(32), nullable=False),
    sa.Column("subscription_id", sa.String(256), nullable=False),
    sa.Column("device_pid", sa.String(40), nullable=False, index=True),
    sa.Column("zone_id", sa.String(32), nullable=False),
    sa.Column("circle", sa.JSON, nullable=False),  # {"key", "lat", "lon", "radius_m"}
    sa.Column("event", sa.String(8), nullable=False),  # enter, exit
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float),
    # requested, active, inactive: watching; ended: the carrier ended it (ops must republish);
    # deleted, replaced: ended by us (removed from the watchlist, renewed by a newer one)
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("ended_reason", sa.String(64)),
    sa.Column("ended_note", sa.Text),
    sa.UniqueConstraint("carrier", "subscription_id", name="uq_fence_subscription"),
)

SYSTEM = "system"  # the actor of what the system does by itself


class StoreError(Exception):
    """A request the store refuses (unknown incident, a silence without a matcher, ...)."""


class NotFound(StoreError):
    """What a request names (an incident, a site, a tip-off ...) does not exist."""


class Conflict(StoreError):
    """What a request would create exists already."""


def create_engine(url: str) -> sa.Engine:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # noqa: ANN001
            # Several processes write (workers, the server): WAL lets readers go on while one writes.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def advance(c, table: sa.Table, row_id: int, column: str, steps: dict[str, tuple[str, str]], step: str, what: str,
            values_for=lambda row: {}) -> tuple[dict, dict]:
    """Move one row's ``column`` a step along ``steps`` (step -> (from, to)), with the
    other values ``values_for(row)`` gives (it raises StoreError to refuse). Returns the
    row before and the values written; StoreError names what is wrong."""
    if step not in steps:
        raise StoreError(f"unknown step {step!r}; one of {list(steps)}")
    before, after = steps[step]
    row = c.execute(sa.select(table).where(table.c.id == row_id)).first()
    if row is None:
        raise NotFound(f"no {what} {row_id}")
    row = dict(row._mapping)
    if row[column] != before:
        raise StoreError(f"the {what} is {row[column]}; {step} needs it {before}")
    values = {column: after, **values_for(row)}
    c.execute(table.update().where(table.c.id == row_id).values(**values))
    return row, values


def write_audit(c, incident_id: str | None, actor: str, action: str, detail: dict) -> None:
    """One line of the audit trail: who did what to which incident (or to the system), when."""
    c.execute(audit.insert().values(incident_id=incident_id, at=time.time(), actor=actor, action=action,
                                    detail=detail))
