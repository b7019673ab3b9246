"""add_version_and_anomaly_fields: optimistic-lock version, anomaly flags, sweep indexes

The seed's v2 migration. Index column orders follow the queries that use them:
- idx_payment_recharge_at: the sweep's `payment_status='paid' AND recharge_status='pending'
  AND recharge_at IS NULL`, walked in id order (equality on three columns, then id);
- idx_recharge_status_at_seqid: `processing`/`unknown`/`success` by claim time (stuck
  orders, the delay report), id last for keyset pages;
- idx_anomaly_reason: anomaly lists and the per-reason, per-day report.

Revision ID: 0002_add_version_anomaly
Revises: 0001_v1_schema
Create Date: 2025-01-18
"""
import sqlalchemy as sa
from alembic import op

revision = "0002_add_version_anomaly"
down_revision = "0001_v1_schema"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("orders") as t:
        t.add_column(sa.Column("version", sa.Integer, nullable=False, server_default="0"))
        t.add_column(sa.Column("anomaly_reason", sa.String(100), nullable=True))
        t.add_column(sa.Column("anomaly_details", sa.Text, nullable=True))
    op.create_index("idx_recharge_status_at_seqid", "orders", ["recharge_status", "recharge_at", "id"])
    op.create_index("idx_payment_recharge_at", "orders",
                    ["payment_status", "recharge_status", "recharge_at", "id"])
    op.create_index("idx_anomaly_reason", "orders", ["anomaly_reason", "created_at"])


def downgrade():
    op.drop_index("idx_anomaly_reason", table_name="orders")
    op.drop_index("idx_payment_recharge_at", table_name="orders")
    op.drop_index("idx_recharge_status_at_seqid", table_name="orders")
    with op.batch_alter_table("orders") as t:
        t.drop_column("anomaly_details")
        t.drop_column("anomaly_reason")
        t.drop_column("version")
