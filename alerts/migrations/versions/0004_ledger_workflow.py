"""The county's ledger workflow: a responsible unit per site, status changes with their
details, patrol visits and the problems they find (tracked to close-out, 销号), public
tip-offs (举报) with verification and rewards, and the log of reports sent.

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sites", sa.Column("unit", sa.String(200), nullable=False, server_default=""))
    op.add_column("site_events", sa.Column("detail", sa.JSON, nullable=True))
    op.create_table(
        "visits",
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
    op.create_table(
        "problems",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("site_id", sa.String(32), sa.ForeignKey("sites.id"), nullable=False, index=True),
        sa.Column("found_at", sa.Float, nullable=False),
        sa.Column("found_by", sa.String(100), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False, index=True),  # open, rectified, closed
        sa.Column("rectified_at", sa.Float),
        sa.Column("rectified_by", sa.String(100)),
        sa.Column("rectification", sa.Text),
        sa.Column("closed_at", sa.Float),
        sa.Column("closed_by", sa.String(100)),
        sa.Column("close_note", sa.Text),
        sa.Column("signal_id", sa.String(40)),
    )
    op.create_table(
        "tipoffs",
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
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("verified_by", sa.String(100)),
        sa.Column("verified_at", sa.Float),
        sa.Column("verification_note", sa.Text),
        sa.Column("reward_state", sa.String(16), nullable=False),
        sa.Column("reward_yuan", sa.Integer),
        sa.Column("reward_proposed_by", sa.String(100)),
        sa.Column("reward_approved_by", sa.String(100)),
        sa.Column("reward_paid_at", sa.Float),
        sa.Column("signal_id", sa.String(40)),
    )
    op.create_table(
        "reports_sent",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("period", sa.String(16), nullable=False),  # e.g. 2026-W49
        sa.Column("sent_at", sa.Float, nullable=False),
        sa.Column("destination", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.UniqueConstraint("kind", "period", "destination", name="uq_report_once"),
    )


def downgrade() -> None:
    for table in ("reports_sent", "tipoffs", "problems", "visits"):
        op.drop_table(table)
    with op.batch_alter_table("site_events") as batch:
        batch.drop_column("detail")
    with op.batch_alter_table("sites") as batch:
        batch.drop_column("unit")
