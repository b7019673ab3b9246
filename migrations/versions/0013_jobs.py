"""job_locks: which instance runs each timed job (the sweep, the reconciliation, the
notice purge) called over HTTP, so that one runs at a time across every instance

Revision ID: 0013_jobs
Revises: 0007_admin_sessions
Create Date: 2026-12-08
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0013_jobs"
down_revision = "0007_admin_sessions"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=3), "mysql", "mariadb")


def upgrade():
    op.create_table(
        "job_locks",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("holder", sa.String(96), nullable=True),
        sa.Column("locked_at", Timestamp, nullable=True),
        sa.Column("expires_at", Timestamp, nullable=True),
        mysql_engine="InnoDB", mysql_charset="utf8mb4",
    )


def downgrade():
    op.drop_table("job_locks")
