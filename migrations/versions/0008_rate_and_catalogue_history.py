"""rate_and_catalogue_history: who set each exchange rate and why; every catalogue change
with who and when; our request id on the audit rows of WeChat and Unitel calls

exchange_rates rows are the rate's history: the active one and every one before it, each
with set_by and note (created_at says when; updated_at when it was replaced).

Revision ID: 0008_rate_and_catalogue_history
Revises: 0009_refunds_and_reconciliation
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0008_rate_and_catalogue_history"
down_revision = "0009_refunds_and_reconciliation"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=3), "mysql", "mariadb")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade():
    with op.batch_alter_table("exchange_rates") as t:
        t.add_column(sa.Column("set_by", sa.String(64), nullable=True))
        t.add_column(sa.Column("note", sa.String(255), nullable=True))
    with op.batch_alter_table("operator_calls") as t:
        t.add_column(sa.Column("http_request_id", sa.String(64), nullable=True))
    op.create_table(
        "product_changes",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("product_operator", sa.String(16), nullable=False),
        sa.Column("recharge_type", sa.String(16), nullable=False),
        sa.Column("product_code", sa.String(32), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("old_price_tg", sa.Integer, nullable=True),
        sa.Column("new_price_tg", sa.Integer, nullable=True),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("note", sa.String(255), nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        mysql_engine="InnoDB", mysql_charset="utf8mb4",
    )
    op.create_index("idx_product_changes_created", "product_changes", ["created_at"])


def downgrade():
    op.drop_index("idx_product_changes_created", table_name="product_changes")
    op.drop_table("product_changes")
    with op.batch_alter_table("operator_calls") as t:
        t.drop_column("http_request_id")
    with op.batch_alter_table("exchange_rates") as t:
        t.drop_column("note")
        t.drop_column("set_by")
