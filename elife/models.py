"""Tables. Column names are the seed's, in snake_case; state changes of an order are
made only by the conditional UPDATEs in fulfil/state.py, never by ORM dirty tracking."""
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from .extensions import db
from .timeutil import Timestamp, utcnow

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER only


def ExactString(length):
    """A string compared byte for byte (MariaDB's default collation ignores case)."""
    return sa.String(length).with_variant(
        mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb")



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
    # unitel_catalogue: the operator's own code (card or package) and what its list says
    operator_code = db.Column(db.String(32))
    eng_name = db.Column(db.String(100))
    days = db.Column(db.Integer)
    data = db.Column(db.String(32))


class ExchangeRate(db.Model):
    __tablename__ = "exchange_rates"
    id = db.Column(BigId, primary_key=True, autoincrement=True)
    currency = db.Column(db.String(16), nullable=False)  # 'MNT_TO_CNY'
    rate = db.Column(db.Numeric(18, 8), nullable=False)  # yuan for one tugrik
    is_active = db.Column(db.Boolean, nullable=False, default=True)
    created_at = db.Column(Timestamp, nullable=False, default=utcnow)  # when it was set
    updated_at = db.Column(Timestamp, nullable=False, default=utcnow, onupdate=utcnow)
    # rate_and_catalogue_history: who set it (cli:<user>, admin:<name>) and why
    set_by = db.Column(db.String(64))
    note = db.Column(db.String(255))


class ProductChange(db.Model):
    """Every change to the catalogue: what, who, when (the product row keeps only now)."""
    __tablename__ = "product_changes"
    __table_args__ = (sa.Index("idx_product_changes_created", "created_at"),)
    id = db.Column(BigId, primary_key=True, autoincrement=True)
    product_operator = db.Column(db.String(16), nullable=False)
    recharge_type = db.Column(db.String(16), nullable=False)
    product_code = db.Column(db.String(32), nullable=False)
    action = db.Column(db.String(16), nullable=False)  # add | disable | enable | set_price
    old_price_tg = db.Column(db.Integer)
    new_price_tg = db.Column(db.Integer)
    actor = db.Column(db.String(64), nullable=False)
    note = db.Column(db.String(255))
    created_at = db.Column(Timestamp, nullable=False, default=utcnow)


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
        # Sweep: unpaid orders past ORDER_TTL_SECONDS, walked by (created_at, id).
        sa.Index("idx_orders_payment_status_created", "payment_status", "created_at", "id"),
        # The sweep's refund query (refunding, by when WeChat accepted the request), and
        # the daily reconciliation's refunds of a day.
        sa.Index("idx_orders_refunding", "payment_status", "refund_requested_at", "id"),
        sa.Index("idx_orders_refunded_at", "refunded_at"),
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
    # The states are fulfil/state.py's PaymentStatus and RechargeStatus; only its moves
    # change them. These defaults are its initial_state().
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
    # breaker_and_expiry
    closed_at = db.Column(Timestamp)  # unpaid past ORDER_TTL_SECONDS, closed at WeChat
    # unitel_catalogue: what is sent to the operator, and the VAT e-receipt it answers with
    operator_code = db.Column(db.String(32))
    vat_register_no = db.Column(db.String(16))
    receipt_bill_id = db.Column(db.String(64))
    receipt_lottery = db.Column(db.String(32))
    receipt_qr_data = db.Column(db.Text)
    receipt_amount = db.Column(db.String(32))
    receipt_vat = db.Column(db.String(32))
    # refunds_and_reconciliation: when WeChat last answered a refund request of ours
    # (accepted it, or refused it). Set, the sweep leaves the refund to the refund query
    # or to a person; never set, the request never reached WeChat and the sweep sends it.
    refund_requested_at = db.Column(Timestamp)


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
    # X-Request-Id of the HTTP request that made the call (request_id is the operator's)
    http_request_id = db.Column(db.String(64))


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


class OperatorPriceList(db.Model):
    """A number's live package list, as the operator last gave it: {type: {code: MNT}}.
    Shared by every worker and host; fresh for UNITEL_PRICE_CACHE_SECONDS."""
    __tablename__ = "operator_price_lists"
    __table_args__ = (sa.Index("idx_operator_price_lists_fetched", "fetched_at"),)
    operator = db.Column(db.String(16), primary_key=True)
    msisdn = db.Column(db.String(16), primary_key=True)
    prices = db.Column(db.Text, nullable=False)
    fetched_at = db.Column(Timestamp, nullable=False)


class RateLimit(db.Model):
    """One fixed window of one abuse limit: `bucket` names the limit, subject and window."""
    __tablename__ = "rate_limits"
    __table_args__ = (sa.Index("idx_rate_limits_expires", "expires_at"),)
    bucket = db.Column(db.String(128), primary_key=True)
    count = db.Column(db.Integer, nullable=False, default=0)
    expires_at = db.Column(Timestamp, nullable=False)


class OperatorBreaker(db.Model):
    """The operator breaker (fulfil/breaker.py): failures in a row, and since when open."""
    __tablename__ = "operator_breakers"
    operator = db.Column(db.String(16), primary_key=True)
    failures = db.Column(db.Integer, nullable=False, default=0)
    opened_at = db.Column(Timestamp)
    updated_at = db.Column(Timestamp, nullable=False, default=utcnow)


class Reconciliation(db.Model):
    """One China-time day of WeChat's bill compared with our orders: both sides' counts
    and sums (fen), and how the last run ended."""
    __tablename__ = "reconciliations"
    __table_args__ = (sa.UniqueConstraint("bill_date", name="uq_reconciliations_bill_date"),)
    id = db.Column(BigId, primary_key=True, autoincrement=True)
    bill_date = db.Column(sa.Date, nullable=False)  # WeChat's bill day, in China time (UTC+8)
    status = db.Column(db.String(16), nullable=False)  # balanced | breaks
    wechat_trades = db.Column(db.Integer, nullable=False, default=0)
    wechat_fee = db.Column(db.BigInteger, nullable=False, default=0)
    wechat_refunds = db.Column(db.Integer, nullable=False, default=0)
    wechat_refund_fee = db.Column(db.BigInteger, nullable=False, default=0)
    our_trades = db.Column(db.Integer, nullable=False, default=0)
    our_fee = db.Column(db.BigInteger, nullable=False, default=0)
    our_refunds = db.Column(db.Integer, nullable=False, default=0)
    our_refund_fee = db.Column(db.BigInteger, nullable=False, default=0)
    breaks_found = db.Column(db.Integer, nullable=False, default=0)
    runs = db.Column(db.Integer, nullable=False, default=0)
    first_run_at = db.Column(Timestamp, nullable=False, default=utcnow)
    last_run_at = db.Column(Timestamp, nullable=False, default=utcnow)


class ReconciliationBreak(db.Model):
    """One difference between WeChat's bill and our orders, kept until a person closes
    it (resolved_at/by/note). `ours` and `theirs` are JSON: fen, or null for no such
    record on that side (totals_mismatch: the fields that differ)."""
    __tablename__ = "reconciliation_breaks"
    __table_args__ = (sa.Index("idx_reconciliation_breaks_day", "bill_date", "resolved_at", "id"),
                      sa.Index("idx_reconciliation_breaks_order", "order_number"))
    id = db.Column(BigId, primary_key=True, autoincrement=True)
    bill_date = db.Column(sa.Date, nullable=False)
    kind = db.Column(db.String(32), nullable=False)
    order_number = db.Column(db.String(64))  # out_trade_no; None for totals_mismatch
    ours = db.Column(db.String(255))
    theirs = db.Column(db.String(255))
    detail = db.Column(db.String(500))
    found_at = db.Column(Timestamp, nullable=False, default=utcnow)
    resolved_at = db.Column(Timestamp)
    resolved_by = db.Column(db.String(64))
    resolved_note = db.Column(db.Text)


class AdminSession(db.Model):
    """One browser's /admin login: its cookie names `sid`; logout deletes the row, so a
    copied cookie stops working then, not when it expires."""
    __tablename__ = "admin_sessions"
    __table_args__ = (sa.Index("idx_admin_sessions_expires", "expires_at"),)
    sid = db.Column(ExactString(32), primary_key=True)
    actor = db.Column(db.String(64), nullable=False)
    created_at = db.Column(Timestamp, nullable=False, default=utcnow)
    expires_at = db.Column(Timestamp, nullable=False)


class JobLock(db.Model):
    """A timed job's lease (fulfil/jobs.py): held by the instance running it until it ends
    or `expires_at` passes (an instance killed mid-job holds it no longer than that)."""
    __tablename__ = "job_locks"
    name = db.Column(db.String(32), primary_key=True)
    holder = db.Column(db.String(96))
    locked_at = db.Column(Timestamp)
    expires_at = db.Column(Timestamp)


# -- subscribe messages (elife/notify/) ----------------------------------------------------

NOTIFICATION_STATUSES = ("pending", "sending", "sent", "no_consent", "failed", "skipped")


class NotificationConsent(db.Model):
    """What a customer said to wx.requestSubscribeMessage for one template: every
    "accept" lets WeChat deliver one later message (a credit), spent when WeChat accepts a
    send; the last choice (accept | reject | ban | filter) as the mini-program reported it."""
    __tablename__ = "notification_consents"
    __table_args__ = (sa.UniqueConstraint("user_id", "template_id", name="uq_notification_consents_user_template"),)
    id = db.Column(BigId, primary_key=True, autoincrement=True)
    user_id = db.Column(BigId, db.ForeignKey("users.id", name="fk_notification_consents_user_id"), nullable=False)
    template_id = db.Column(ExactString(64), nullable=False)
    credits = db.Column(db.Integer, nullable=False, default=0, server_default="0")
    last_choice = db.Column(db.String(16))
    chosen_at = db.Column(Timestamp)
    created_at = db.Column(Timestamp, nullable=False, default=utcnow)
    updated_at = db.Column(Timestamp, nullable=False, default=utcnow)


class Notification(db.Model):
    """The outbox: one message an order earned (one per order and kind), written in the
    transaction of the state change that earned it, then sent by whoever gets to it first
    (the top-up's pool after its settle, or the sweep)."""
    __tablename__ = "notifications"
    __table_args__ = (
        sa.UniqueConstraint("order_number", "kind", name="uq_notifications_order_kind"),
        # The sweep: pending (and stuck sending) rows by when they are due.
        sa.Index("idx_notifications_due", "status", "next_attempt_at", "id"),
        sa.Index("idx_notifications_created", "created_at"),  # report: per day
        sa.Index("idx_notifications_kind_status", "kind", "status"),  # the metric: counts
    )
    id = db.Column(BigId, primary_key=True, autoincrement=True)
    order_number = db.Column(db.String(32), nullable=False)
    kind = db.Column(db.String(32), nullable=False)  # recharged | failed_refunded | refunded
    user_id = db.Column(BigId, db.ForeignKey("users.id", name="fk_notifications_user_id"), nullable=False)
    template_id = db.Column(ExactString(64))  # the kind's template when it was sent
    status = db.Column(db.String(16), nullable=False, default="pending", server_default="pending")
    attempts = db.Column(db.Integer, nullable=False, default=0, server_default="0")
    next_attempt_at = db.Column(Timestamp)
    claimed_at = db.Column(Timestamp)  # a sender took it (status sending)
    last_error = db.Column(db.String(255))  # WeChat's errcode and words, or why not sent
    data = db.Column(db.Text)  # the fields as sent (JSON), for the person on duty
    sent_at = db.Column(Timestamp)
    created_at = db.Column(Timestamp, nullable=False, default=utcnow)
    updated_at = db.Column(Timestamp, nullable=False, default=utcnow)


class NotificationTemplate(db.Model):
    """A kind's template, as the merchant picked it in the mini-program console: its id
    and which of our values goes into which of its fields (JSON {key: value name})."""
    __tablename__ = "notification_templates"
    kind = db.Column(db.String(32), primary_key=True)
    template_id = db.Column(ExactString(64), nullable=False)
    fields = db.Column(db.Text, nullable=False)
    updated_by = db.Column(db.String(64))
    updated_at = db.Column(Timestamp, nullable=False, default=utcnow)


class WeChatToken(db.Model):
    """The access_token stable_token gave (a host only: Cloud Hosting needs none), shared
    by every worker and host, renewed before it expires and when WeChat says 40001/42001."""
    __tablename__ = "wechat_tokens"
    appid = db.Column(db.String(32), primary_key=True)
    token = db.Column(ExactString(512), nullable=False)  # WeChat: keep room for 512
    expires_at = db.Column(Timestamp, nullable=False)
    forced_at = db.Column(Timestamp)  # the last forced refresh: WeChat allows one per 30 s
    updated_at = db.Column(Timestamp, nullable=False, default=utcnow)
