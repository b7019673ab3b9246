"""v1 schema: users, products, exchange_rates, orders (the seed's first release)

Revision ID: 0001_v1_schema
Revises:
Create Date: 2025-01-01
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001_v1_schema"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=3), "mysql", "mariadb")
MYSQL = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


def upgrade():
    op.create_table(
        "users",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("openid", sa.String(64), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.UniqueConstraint("openid", name="uq_users_openid"),
        **MYSQL,
    )
    op.create_table(
        "products",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("product_code", sa.String(32), nullable=False),
        sa.Column("product_operator", sa.String(16), nullable=False),
        sa.Column("recharge_type", sa.String(16), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("price_tg", sa.Integer, nullable=False),
        sa.Column("is_active", sa.Boolean, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.UniqueConstraint("product_operator", "recharge_type", "product_code", name="uq_products_code"),
        **MYSQL,
    )
    op.create_table(
        "exchange_rates",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("currency", sa.String(16), nullable=False),
        sa.Column("rate", sa.Numeric(18, 8), nullable=False),
        sa.Column("is_active", sa.Boolean, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        **MYSQL,
    )
    op.create_table(
        "orders",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("order_number", sa.String(32), nullable=False),
        sa.Column("user_id", BigId, sa.ForeignKey("users.id", name="fk_orders_user_id"), nullable=False),
        sa.Column("phone_number", sa.String(16), nullable=False),
        sa.Column("product_operator", sa.String(16), nullable=False),
        sa.Column("recharge_type", sa.String(16), nullable=False),
        sa.Column("product_code", sa.String(32), nullable=False),
        sa.Column("product_price_tg", sa.Integer, nullable=False),
        sa.Column("product_price_rmb", sa.Numeric(10, 2), nullable=False),
        sa.Column("total_fee", sa.Integer, nullable=False),
        sa.Column("exchange_rate", sa.Numeric(18, 8), nullable=False),
        sa.Column("payment_status", sa.String(16), nullable=False),
        sa.Column("recharge_status", sa.String(16), nullable=False),
        sa.Column("transaction_id", sa.String(64)),
        sa.Column("paid_at", Timestamp),
        sa.Column("recharge_at", Timestamp),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.UniqueConstraint("order_number", name="uq_orders_order_number"),
        **MYSQL,
    )
    op.create_index("idx_orders_user_id", "orders", ["user_id", "id"])
    op.create_index("idx_orders_created_at", "orders", ["created_at"])
    op.create_index("idx_orders_paid_at", "orders", ["paid_at"])


def downgrade():
    op.drop_table("orders")
    op.drop_table("exchange_rates")
    op.drop_table("products")
    op.drop_table("users")
