"""The carriers' CAMARA geofencing subscriptions for the watchlist: subscription id to
pseudonym and zone, their expiry and how each ended.

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fence_subscriptions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("carrier", sa.String(32), nullable=False),
        sa.Column("subscription_id", sa.String(256), nullable=False),
        sa.Column("device_pid", sa.String(40), nullable=False, index=True),
        sa.Column("zone_id", sa.String(32), nullable=False),
        sa.Column("circle", sa.JSON, nullable=False),
        sa.Column("event", sa.String(8), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("ended_reason", sa.String(64)),
        sa.Column("ended_note", sa.Text),
        sa.UniqueConstraint("carrier", "subscription_id", name="uq_fence_subscription"),
    )


def downgrade() -> None:
    op.drop_table("fence_subscriptions")
