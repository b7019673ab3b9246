"""Tables. Column names are the seed's, in snake_case; state changes of an order are
made only by conditional UPDATEs in payments.py and recharge.py, never by ORM dirty
tracking."""
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from .extensions import db
from .timeutil import Timestamp, utcnow

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER only


def ExactString(length):
    """A string compared byte for byte (MariaDB's default collation ignores case)."""
    return sa.String(length).with_variant(
        mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb")

PAYMENT_STATUSES = ("unpaid", "paid", "refunded")
RECHARGE_STATUSES = ("pending", "processing", "success", "failed", "unknown")


class User(db.Model):
    __tablename__ = "users"
    __table_args__ = (sa.UniqueConstraint("openid", name="uq_users_openid"),)
    id = db.Column(BigId, primary_key=True, autoincrement=True)
    openid = db.Column(ExactString(64), nullable=False)
    created_at = db.Column(Timestamp, nullable=False, default=utcnow)
    updated_at = db.Column(Timestamp, nullable=False, default=utcnow, onupdate=utcnow)


class Product(db.Model):
    __tablename__ = "products"
    __table_args__ = (
        sa.UniqueConstraint("product_operator", "recharge_type", "product_code", name="uq_products_code"),
    )
    id = db.Column(BigId, primary_key=True, autoincrement=True)
    product_code = db.Column(db.String(32), nullable=False)
    product_operator = db.Column(db.String(16), nullable=False)
    recharge_type = db.Column(db.String(16), nullable=False)
    name = db.Column(db.String(100), nullable=False)
    price_tg = db.Column(db.Integer, nullable=False)  # whole tugrik
    is_active = db.Column(db.Boolean, nullable=False, default=True)
    created_at = db.Column(Timestamp, nullable=False, default=utcnow)
    updated_at = db.Column(Timestamp, nullable=False, default=utcnow, onupdate=utcnow)


class ExchangeRate(db.Model):
    __tablename__ = "exchange_rates"
    id = db.Column(BigId, primary_key=True, autoincrement=True)
    currency = db.Column(db.String(16), nullable=False)  # 'MNT_TO_CNY'
    rate = db.Column(db.Numeric(18, 8), nullable=False)  # yuan for one tugrik
    is_active = db.Column(db.Boolean, nullable=False, default=True)
    created_at = db.Column(Timestamp, nullable=False, default=utcnow)
    updated_at = db.Column(Timestamp, nullable=False, default=utcnow, onupdate=utcnow)


class Order(db.Model):
    __tablename__ = "orders"
    __table_args__ = (
        sa.UniqueConstraint("order_number", name="uq_orders_order_number"),
        # Sweep: paid + pending + unclaimed, walked in id order.
        sa.Index("idx_payment_recharge_at", "payment_status", "recharge_status", "recharge_at", "id"),
        # Stuck processing / unknown by claim time; success by time for the delay report.
        sa.Index("idx_recharge_status_at_seqid", "recharge_status", "recharge_at", "id"),
        sa.Index("idx_anomaly_reason", "anomaly_reason", "created_at"),
        sa.Index("idx_orders_user_id", "user_id", "id"),
        sa.Index("idx_orders_created_at", "created_at"),
        sa.Index("idx_orders_payment_created", "payment_status", "payment_created_at", "id"),
        sa.Index("idx_orders_paid_at", "paid_at"),
    )
    id = db.Column(BigId, primary_key=True, autoincrement=True)
    order_number = db.Column(db.String(32), nullable=False)
    user_id = db.Column(BigId, db.ForeignKey("users.id", name="fk_orders_user_id"), nullable=False)
    phone_number = db.Column(db.String(16), nullable=False)
    product_operator = db.Column(db.String(16), nullable=False)
    recharge_type = db.Column(db.String(16), nullable=False)
    product_code = db.Column(db.String(32), nullable=False)
    product_price_tg = db.Column(db.Integer, nullable=False)
    product_price_rmb = db.Column(db.Numeric(10, 2), nullable=False)
    total_fee = db.Column(db.Integer, nullable=False)  # fen; what WeChat must charge
    exchange_rate = db.Column(db.Numeric(18, 8), nullable=False)
    payment_status = db.Column(db.String(16), nullable=False, default="unpaid")
    recharge_status = db.Column(db.String(16), nullable=False, default="pending")
    transaction_id = db.Column(db.String(64))
    paid_at = db.Column(Timestamp)
    recharge_at = db.Column(Timestamp)  # the claim: set once, by the winner
    created_at = db.Column(Timestamp, nullable=False, default=utcnow)
    updated_at = db.Column(Timestamp, nullable=False, default=utcnow)
    # add_version_and_anomaly_fields
    version = db.Column(db.Integer, nullable=False, default=0, server_default="0")
    anomaly_reason = db.Column(db.String(100))
    anomaly_details = db.Column(db.Text)
    # elife_operations
    payment_created_at = db.Column(Timestamp)
    recharged_at = db.Column(Timestamp)
    submit_count = db.Column(db.Integer, nullable=False, default=0, server_default="0")
    refunded_at = db.Column(Timestamp)
    resolved_at = db.Column(Timestamp)
    resolved_note = db.Column(db.String(255))


class PaymentNotice(db.Model):
    """Every callback as it arrived, written with the first decision about it and before
    it is answered."""
    __tablename__ = "payment_notices"
    __table_args__ = (sa.Index("idx_payment_notices_order", "order_number", "id"),
                      sa.Index("idx_payment_notices_received", "received_at"))
    id = db.Column(BigId, primary_key=True, autoincrement=True)
    order_number = db.Column(db.String(64), nullable=False)
    received_at = db.Column(Timestamp, nullable=False, default=utcnow)
    headers = db.Column(db.Text)
    body = db.Column(db.Text)
    decision = db.Column(db.String(32))
    detail = db.Column(db.Text)


class OperatorCall(db.Model):
    """Every call to the operator (and WeChat refunds): who asked what, and the answer."""
    __tablename__ = "operator_calls"
    __table_args__ = (
        sa.Index("idx_operator_calls_order", "order_number", "id"),
        sa.Index("idx_operator_calls_msisdn", "msisdn", "kind"),
    )
    id = db.Column(BigId, primary_key=True, autoincrement=True)
    order_number = db.Column(db.String(32), nullable=False)
    request_id = db.Column(db.String(64))
    msisdn = db.Column(db.String(16))
    kind = db.Column(db.String(16), nullable=False)  # submit | resubmit | status | refund
    outcome = db.Column(db.String(16), nullable=False)  # success | failed | unknown | not_found | error
    http_status = db.Column(db.Integer)
    answer = db.Column(db.Text)
    latency_ms = db.Column(db.Integer)
    created_at = db.Column(Timestamp, nullable=False, default=utcnow)


class OrderEvent(db.Model):
    """Decisions about an order made by a person or a process: who, what, why."""
    __tablename__ = "order_events"
    __table_args__ = (sa.Index("idx_order_events_order", "order_number", "id"),)
    id = db.Column(BigId, primary_key=True, autoincrement=True)
    order_number = db.Column(db.String(32), nullable=False)
    event = db.Column(db.String(48), nullable=False)
    actor = db.Column(db.String(64), nullable=False)
    note = db.Column(db.Text)
    created_at = db.Column(Timestamp, nullable=False, default=utcnow)


class IdempotencyKey(db.Model):
    __tablename__ = "idempotency_keys"
    __table_args__ = (sa.UniqueConstraint("user_id", "idem_key", name="uq_idempotency_user_key"),
                      sa.Index("idx_idempotency_created", "created_at"))
    id = db.Column(BigId, primary_key=True, autoincrement=True)
    user_id = db.Column(BigId, nullable=False)
    idem_key = db.Column(ExactString(64), nullable=False)
    order_number = db.Column(db.String(32))
    created_at = db.Column(Timestamp, nullable=False, default=utcnow)


class RateLimit(db.Model):
    """One fixed window of one abuse limit: `bucket` names the limit, subject and window."""
    __tablename__ = "rate_limits"
    __table_args__ = (sa.Index("idx_rate_limits_expires", "expires_at"),)
    bucket = db.Column(db.String(128), primary_key=True)
    count = db.Column(db.Integer, nullable=False, default=0)
    expires_at = db.Column(Timestamp, nullable=False)


class AdminSession(db.Model):
    """One browser's /admin login: its cookie names `sid`; logout deletes the row, so a
    copied cookie stops working then, not when it expires."""
    __tablename__ = "admin_sessions"
    __table_args__ = (sa.Index("idx_admin_sessions_expires", "expires_at"),)
    sid = db.Column(ExactString(32), primary_key=True)
    actor = db.Column(db.String(64), nullable=False)
    created_at = db.Column(Timestamp, nullable=False, default=utcnow)
    expires_at = db.Column(Timestamp, nullable=False)
