"""Incidents remember when their evidence was received, and carry a version.

``received_at``: wall time at which the newest evidence was stored. Quiet-close and
escalation compare the wall clock with it (and with the draft's ``severity_at``), so every
worker decides the same, whatever its sources' clocks say (alerts.fusion). Existing rows
take their last write time.

``version``: incremented by every write; a write applies only to the version it read, so
processes that write the same incident (workers, housekeeping, the server) never
overwrite each other's changes (alerts.store).

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no table rebuild: SQLite would have to drop a table that evidence
    # rows refer to). received_at stays nullable in the schema; every row has one.
    op.add_column("incidents", sa.Column("received_at", sa.Float, nullable=True))
    op.add_column("incidents", sa.Column("version", sa.Integer, nullable=False, server_default="0"))
    op.execute("UPDATE incidents SET received_at = written_at WHERE received_at IS NULL")


def downgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("version")
        batch.drop_column("received_at")
