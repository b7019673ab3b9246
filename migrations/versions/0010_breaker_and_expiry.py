"""breaker_and_expiry: the operator breaker's row, and unpaid orders that expire

operator_breakers keeps, per operator, the outages in a row and since when the breaker
is open (shared by every worker and host). orders.closed_at stamps an unpaid order
closed after ORDER_TTL_SECONDS; the index walks unpaid orders by age for the sweep.

Revision ID: 0010_breaker_and_expiry
Revises: 0006_unitel_catalogue
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0010_breaker_and_expiry"
down_revision = "0006_unitel_catalogue"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=3), "mysql", "mariadb")


def upgrade():
    op.create_table(
        "operator_breakers",
        sa.Column("operator", sa.String(16), primary_key=True),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("opened_at", Timestamp),
        sa.Column("updated_at", Timestamp, nullable=False),
        mysql_engine="InnoDB", mysql_charset="utf8mb4",
    )
    op.add_column("orders", sa.Column("closed_at", Timestamp))
    op.create_index("idx_orders_payment_status_created", "orders", ["payment_status", "created_at", "id"])


def downgrade():
    # The older code knows no closed orders: unpaid again (it never asks about them).
    op.execute("UPDATE orders SET payment_status = 'unpaid' WHERE payment_status = 'closed'")
    op.drop_index("idx_orders_payment_status_created", table_name="orders")
    op.drop_column("orders", "closed_at")
    op.drop_table("operator_breakers")
