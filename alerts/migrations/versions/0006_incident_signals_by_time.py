"""An index on incident_signals (incident_id, ts): an incident's page reads its newest
signals, and an incident a site feeds for a month holds tens of thousands.

Revision ID: 0006
Revises: 0005
"""
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_incident_signals_incident_ts", "incident_signals", ["incident_id", "ts"])


def downgrade() -> None:
    op.drop_index("ix_incident_signals_incident_ts", table_name="incident_signals")
