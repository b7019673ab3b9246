"""elife_operations: audit tables, idempotency keys, and the order columns the sweep needs

Revision ID: 0003_elife_operations
Revises: 0002_add_version_anomaly
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0003_elife_operations"
down_revision = "0002_add_version_anomaly"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=3), "mysql", "mariadb")
MYSQL = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


def upgrade():
    with op.batch_alter_table("orders") as t:
        t.add_column(sa.Column("payment_created_at", Timestamp, nullable=True))
        t.add_column(sa.Column("recharged_at", Timestamp, nullable=True))
        t.add_column(sa.Column("submit_count", sa.Integer, nullable=False, server_default="0"))
        t.add_column(sa.Column("refunded_at", Timestamp, nullable=True))
        t.add_column(sa.Column("resolved_at", Timestamp, nullable=True))
        t.add_column(sa.Column("resolved_note", sa.String(255), nullable=True))
    op.create_index("idx_orders_payment_created", "orders", ["payment_status", "payment_created_at", "id"])

    op.create_table(
        "payment_notices",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("order_number", sa.String(64), nullable=False),
        sa.Column("received_at", Timestamp, nullable=False),
        sa.Column("headers", sa.Text),
        sa.Column("body", sa.Text),
        sa.Column("decision", sa.String(32)),
        sa.Column("detail", sa.Text),
        **MYSQL,
    )
    op.create_index("idx_payment_notices_order", "payment_notices", ["order_number", "id"])
    op.create_table(
        "operator_calls",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("order_number", sa.String(32), nullable=False),
        sa.Column("request_id", sa.String(64)),
        sa.Column("msisdn", sa.String(16)),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("http_status", sa.Integer),
        sa.Column("answer", sa.Text),
        sa.Column("latency_ms", sa.Integer),
        sa.Column("created_at", Timestamp, nullable=False),
        **MYSQL,
    )
    op.create_index("idx_operator_calls_order", "operator_calls", ["order_number", "id"])
    op.create_index("idx_operator_calls_msisdn", "operator_calls", ["msisdn", "kind"])
    op.create_table(
        "order_events",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("order_number", sa.String(32), nullable=False),
        sa.Column("event", sa.String(48), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("created_at", Timestamp, nullable=False),
        **MYSQL,
    )
    op.create_index("idx_order_events_order", "order_events", ["order_number", "id"])
    op.create_table(
        "idempotency_keys",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("user_id", BigId, nullable=False),
        sa.Column("idem_key", sa.String(64), nullable=False),
        sa.Column("order_number", sa.String(32)),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.UniqueConstraint("user_id", "idem_key", name="uq_idempotency_user_key"),
        **MYSQL,
    )


def downgrade():
    op.drop_table("idempotency_keys")
    op.drop_table("order_events")
    op.drop_index("idx_operator_calls_msisdn", table_name="operator_calls")
    op.drop_index("idx_operator_calls_order", table_name="operator_calls")
    op.drop_table("operator_calls")
    op.drop_index("idx_payment_notices_order", table_name="payment_notices")
    op.drop_table("payment_notices")
    op.drop_index("idx_orders_payment_created", table_name="orders")
    with op.batch_alter_table("orders") as t:
        for col in ("resolved_note", "resolved_at", "refunded_at", "submit_count", "recharged_at",
                    "payment_created_at"):
            t.drop_column(col)
