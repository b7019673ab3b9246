"""rate_limits: abuse-limit windows shared by every worker and host; an index to purge
Idempotency-Keys past their 24 hours

Revision ID: 0004_rate_limits
Revises: 0003_elife_operations
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0004_rate_limits"
down_revision = "0003_elife_operations"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=3), "mysql", "mariadb")


def upgrade():
    op.create_table(
        "rate_limits",
        sa.Column("bucket", sa.String(128), primary_key=True),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("expires_at", Timestamp, nullable=False),
        mysql_engine="InnoDB", mysql_charset="utf8mb4",
    )
    op.create_index("idx_rate_limits_expires", "rate_limits", ["expires_at"])
    op.create_index("idx_idempotency_created", "idempotency_keys", ["created_at"])


def downgrade():
    op.drop_index("idx_idempotency_created", table_name="idempotency_keys")
    op.drop_index("idx_rate_limits_expires", table_name="rate_limits")
    op.drop_table("rate_limits")
