"""case_sensitive_keys: WeChat openids and Idempotency-Keys compare byte for byte

MariaDB's default collation ignores case, so the openids 'oAbc' and 'oabc' -- two
WeChat users -- would be one customer, and Idempotency-Key 'ABC' would replay 'abc'.
SQLite already compares bytes; nothing to do there.

Revision ID: 0005_case_sensitive_keys
Revises: 0004_rate_limits
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0005_case_sensitive_keys"
down_revision = "0004_rate_limits"
branch_labels = None
depends_on = None

COLUMNS = (("users", "openid", 64), ("idempotency_keys", "idem_key", 64))


def _alter(collation):
    if op.get_bind().dialect.name != "mysql":
        return
    for table, column, length in COLUMNS:
        op.alter_column(table, column, existing_nullable=False,
                        existing_type=sa.String(length),
                        type_=mysql.VARCHAR(length, charset="utf8mb4", collation=collation))


def upgrade():
    _alter("utf8mb4_bin")


def downgrade():
    _alter("utf8mb4_general_ci")
