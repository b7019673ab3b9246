"""notifications: subscribe messages -- the customer's consents, the outbox, the
templates, and the shared access_token

notification_consents: credits per (customer, template) from wx.requestSubscribeMessage.
notifications: one row per order and kind (unique), written with the state change that
earns it, sent from there. notification_templates: kind -> template id and field map
(`flask elife notify template set`). wechat_tokens: stable_token's access_token, one row
per appid, for every worker and host.

Downgrade drops the four tables: consents not yet spent and messages not yet sent are lost
with them (nothing about an order lives there).

Revision ID: 0011_notifications
Revises: 0013_jobs
Create Date: 2026-12-08
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0011_notifications"
down_revision = "0013_jobs"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=3), "mysql", "mariadb")
MYSQL = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


def ExactString(length):
    return sa.String(length).with_variant(
        mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb")


def upgrade():
    op.create_table(
        "notification_consents",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("user_id", BigId, sa.ForeignKey("users.id", name="fk_notification_consents_user_id"),
                  nullable=False),
        sa.Column("template_id", ExactString(64), nullable=False),
        sa.Column("credits", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_choice", sa.String(16)),
        sa.Column("chosen_at", Timestamp),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.UniqueConstraint("user_id", "template_id", name="uq_notification_consents_user_template"),
        **MYSQL,
    )
    op.create_table(
        "notifications",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("order_number", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("user_id", BigId, sa.ForeignKey("users.id", name="fk_notifications_user_id"), nullable=False),
        sa.Column("template_id", ExactString(64)),
        sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", Timestamp),
        sa.Column("claimed_at", Timestamp),
        sa.Column("last_error", sa.String(255)),
        sa.Column("data", sa.Text),
        sa.Column("sent_at", Timestamp),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.UniqueConstraint("order_number", "kind", name="uq_notifications_order_kind"),
        **MYSQL,
    )
    op.create_index("idx_notifications_due", "notifications", ["status", "next_attempt_at", "id"])
    op.create_index("idx_notifications_created", "notifications", ["created_at"])
    op.create_index("idx_notifications_kind_status", "notifications", ["kind", "status"])
    op.create_table(
        "notification_templates",
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("template_id", ExactString(64), nullable=False),
        sa.Column("fields", sa.Text, nullable=False),
        sa.Column("updated_by", sa.String(64)),
        sa.Column("updated_at", Timestamp, nullable=False),
        **MYSQL,
    )
    op.create_table(
        "wechat_tokens",
        sa.Column("appid", sa.String(32), primary_key=True),
        sa.Column("token", ExactString(512), nullable=False),
        sa.Column("expires_at", Timestamp, nullable=False),
        sa.Column("forced_at", Timestamp),
        sa.Column("updated_at", Timestamp, nullable=False),
        **MYSQL,
    )


def downgrade():
    op.drop_table("wechat_tokens")
    op.drop_table("notification_templates")
    op.drop_index("idx_notifications_kind_status", table_name="notifications")
    op.drop_index("idx_notifications_created", table_name="notifications")
    op.drop_index("idx_notifications_due", table_name="notifications")
    op.drop_table("notifications")
    op.drop_table("notification_consents")
