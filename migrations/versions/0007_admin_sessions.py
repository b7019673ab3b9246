"""admin_sessions: /admin browser logins kept server-side, so a logout ends the cookie;
an index to purge payment notices past their retention

Revision ID: 0007_admin_sessions
Revises: 0008_rate_and_catalogue_history
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0007_admin_sessions"
down_revision = "0008_rate_and_catalogue_history"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=3), "mysql", "mariadb")
# The session id is random base64url: compared byte for byte (MariaDB ignores case otherwise).
Sid = sa.String(32).with_variant(mysql.VARCHAR(32, charset="utf8mb4", collation="utf8mb4_bin"),
                                 "mysql", "mariadb")


def upgrade():
    op.create_table(
        "admin_sessions",
        sa.Column("sid", Sid, primary_key=True),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("expires_at", Timestamp, nullable=False),
        mysql_engine="InnoDB", mysql_charset="utf8mb4",
    )
    op.create_index("idx_admin_sessions_expires", "admin_sessions", ["expires_at"])
    op.create_index("idx_payment_notices_received", "payment_notices", ["received_at"])


def downgrade():
    op.drop_index("idx_payment_notices_received", table_name="payment_notices")
    op.drop_index("idx_admin_sessions_expires", table_name="admin_sessions")
    op.drop_table("admin_sessions")
