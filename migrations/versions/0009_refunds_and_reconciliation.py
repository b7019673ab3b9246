"""refunds_and_reconciliation: a refund tracked until WeChat confirms it, and the daily
reconciliation against WeChat's bill

orders gains refund_requested_at (when WeChat last answered our refund request) and
two indexes: the sweep's refund query walks (payment_status, refund_requested_at, id),
the reconciliation reads a day's refunds by refunded_at. The payment status `refunding`
needs no DDL (payment_status is a plain string). Two tables: reconciliations (one row
per bill day) and reconciliation_breaks (one row per difference, kept until a person
resolves it).

Downgrade: an order still `refunding` goes back to `paid` (its recharge failed), which the
older code's sweep refunds again with the same out_refund_no: WeChat refunds once.

Revision ID: 0009_refunds_and_reconciliation
Revises: 0010_breaker_and_expiry
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0009_refunds_and_reconciliation"
down_revision = "0010_breaker_and_expiry"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=3), "mysql", "mariadb")
MYSQL = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


def upgrade():
    with op.batch_alter_table("orders") as t:
        t.add_column(sa.Column("refund_requested_at", Timestamp, nullable=True))
    op.create_index("idx_orders_refunding", "orders", ["payment_status", "refund_requested_at", "id"])
    op.create_index("idx_orders_refunded_at", "orders", ["refunded_at"])

    op.create_table(
        "reconciliations",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("bill_date", sa.Date, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("wechat_trades", sa.Integer, nullable=False),
        sa.Column("wechat_fee", sa.BigInteger, nullable=False),
        sa.Column("wechat_refunds", sa.Integer, nullable=False),
        sa.Column("wechat_refund_fee", sa.BigInteger, nullable=False),
        sa.Column("our_trades", sa.Integer, nullable=False),
        sa.Column("our_fee", sa.BigInteger, nullable=False),
        sa.Column("our_refunds", sa.Integer, nullable=False),
        sa.Column("our_refund_fee", sa.BigInteger, nullable=False),
        sa.Column("breaks_found", sa.Integer, nullable=False),
        sa.Column("runs", sa.Integer, nullable=False),
        sa.Column("first_run_at", Timestamp, nullable=False),
        sa.Column("last_run_at", Timestamp, nullable=False),
        sa.UniqueConstraint("bill_date", name="uq_reconciliations_bill_date"),
        **MYSQL,
    )
    op.create_table(
        "reconciliation_breaks",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("bill_date", sa.Date, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("order_number", sa.String(64)),
        sa.Column("ours", sa.String(255)),
        sa.Column("theirs", sa.String(255)),
        sa.Column("detail", sa.String(500)),
        sa.Column("found_at", Timestamp, nullable=False),
        sa.Column("resolved_at", Timestamp),
        sa.Column("resolved_by", sa.String(64)),
        sa.Column("resolved_note", sa.Text),
        **MYSQL,
    )
    op.create_index("idx_reconciliation_breaks_day", "reconciliation_breaks", ["bill_date", "resolved_at", "id"])
    op.create_index("idx_reconciliation_breaks_order", "reconciliation_breaks", ["order_number"])


def downgrade():
    op.drop_index("idx_reconciliation_breaks_order", table_name="reconciliation_breaks")
    op.drop_index("idx_reconciliation_breaks_day", table_name="reconciliation_breaks")
    op.drop_table("reconciliation_breaks")
    op.drop_table("reconciliations")
    op.execute("UPDATE orders SET payment_status = 'paid' WHERE payment_status = 'refunding'")
    op.drop_index("idx_orders_refunded_at", table_name="orders")
    op.drop_index("idx_orders_refunding", table_name="orders")
    with op.batch_alter_table("orders") as t:
        t.drop_column("refund_requested_at")
