"""unitel_catalogue: the operator's codes and package details on products; what an order
sends (operator_code, vat_register_no) and its VAT e-receipt; the live price lists

Unitel's real API (elife/clients/unitel.py) tops up by the operator's card or package
code, checks prices against a per-number list, and answers with an e-barimt receipt.
Every new column is nullable: orders and products from before keep working (an order
without operator_code sends its product's). The seed's products get their operator
codes here, so that an upgrade (also one after a rollback) sells them without a re-seed;
a product without one is sent, and checked, by its own code.

Revision ID: 0006_unitel_catalogue
Revises: 0005_case_sensitive_keys
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0006_unitel_catalogue"
down_revision = "0005_case_sensitive_keys"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=3), "mysql", "mariadb")

PRODUCT_COLUMNS = (
    ("operator_code", sa.String(32)), ("eng_name", sa.String(100)), ("days", sa.Integer()),
    ("data", sa.String(32)),
)
ORDER_COLUMNS = (
    ("operator_code", sa.String(32)), ("vat_register_no", sa.String(16)),
    ("receipt_bill_id", sa.String(64)), ("receipt_lottery", sa.String(32)), ("receipt_qr_data", sa.Text()),
    ("receipt_amount", sa.String(32)), ("receipt_vat", sa.String(32)),
)


# The seed's products (elife/ops/seed.py): our code -> Unitel's card or package code.
SEED_OPERATOR_CODES = {
    ("VOICE", "1000"): "SD1000", ("VOICE", "2000"): "SD2000", ("VOICE", "3000"): "SD3000",
    ("VOICE", "5000"): "SD5000", ("VOICE", "10000"): "SD10000", ("VOICE", "20000"): "SD20000",
    ("DATA", "DATA1GB"): "data1gb7d", ("DATA", "DATA5GB"): "data5gb30d", ("DATA", "DATA20GB"): "data20gb30d",
}


def upgrade():
    with op.batch_alter_table("products") as batch:
        for name, type_ in PRODUCT_COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))
    with op.batch_alter_table("orders") as batch:
        for name, type_ in ORDER_COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))
    op.create_table(
        "operator_price_lists",
        sa.Column("operator", sa.String(16), primary_key=True),
        sa.Column("msisdn", sa.String(16), primary_key=True),
        sa.Column("prices", sa.Text, nullable=False),
        sa.Column("fetched_at", Timestamp, nullable=False),
        mysql_engine="InnoDB", mysql_charset="utf8mb4",
    )
    op.create_index("idx_operator_price_lists_fetched", "operator_price_lists", ["fetched_at"])
    # Literal SQL (the values are the constants above), so that `db upgrade --sql` prints it too.
    for (rtype, code), operator_code in SEED_OPERATOR_CODES.items():
        op.execute(f"UPDATE products SET operator_code = '{operator_code}' WHERE product_operator = 'UNITEL' "
                   f"AND recharge_type = '{rtype}' AND product_code = '{code}' AND operator_code IS NULL")


def downgrade():
    op.drop_index("idx_operator_price_lists_fetched", table_name="operator_price_lists")
    op.drop_table("operator_price_lists")
    with op.batch_alter_table("orders") as batch:
        for name, _ in reversed(ORDER_COLUMNS):
            batch.drop_column(name)
    with op.batch_alter_table("products") as batch:
        for name, _ in reversed(PRODUCT_COLUMNS):
            batch.drop_column(name)
