"""Creating and reading a customer's orders. The price is ours, never the client's."""
import logging
import secrets
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from . import catalog, limits, phones
from .errors import ApiError
from .extensions import db
from .logs import event
from .models import IdempotencyKey, Order
from .pricing import PricingError, active_rate, price, yuan
from .timeutil import iso, utcnow

log = logging.getLogger("elife.orders")
IDEMPOTENCY_TTL = timedelta(hours=24)


def new_order_number():
    """ORD + UTC second + 8 random digits: sortable by eye, not guessable from the last."""
    return "ORD" + utcnow().strftime("%Y%m%d%H%M%S") + f"{secrets.randbelow(10**8):08d}"


def create(user, *, phone_number, operator, recharge_type, product_code, idempotency_key=None):
    if operator not in phones.SUPPORTED_OPERATORS:
        raise ApiError(400, "unsupported_operator", f"we do not sell top-ups for {operator}")
    if recharge_type not in catalog.RECHARGE_TYPES:
        raise ApiError(400, "invalid_recharge_type", "rechargeType must be VOICE or DATA")
    try:
        number = phones.check_operator(phone_number, operator)
    except phones.PhoneError as e:
        raise ApiError(400, e.code, e.message) from None
    product = catalog.find_active(operator, recharge_type, product_code)
    if product is None:
        raise ApiError(400, "unknown_product", "no such product for this operator and type")
    try:
        pr = price(product.price_tg, active_rate())
    except PricingError as e:
        # No rate is our configuration (503, as GET /products says); a product that
        # would cost nothing is this product (409).
        raise ApiError(503 if e.code == "no_exchange_rate" else 409, e.code, e.message) from None

    # Read these now: every commit below (the limit counters, the insert) expires the
    # ORM objects, and touching one afterwards costs a SELECT (scripts/bench).
    user_id, code = user.id, product.product_code
    limits.orders_by_user(user_id)  # counts valid creates only; commits its own counter
    if idempotency_key:
        existing = _claim_idempotency_key(user_id, idempotency_key)
        if existing is not None:
            asked = (number, operator, recharge_type, code)
            had = (existing.phone_number, existing.product_operator, existing.recharge_type,
                   existing.product_code)
            if asked != had:
                raise ApiError(422, "idempotency_key_reused",
                               "this Idempotency-Key was used for a different order")
            return existing, False

    order = Order(
        order_number=new_order_number(), user_id=user_id, phone_number=number,
        product_operator=operator, recharge_type=recharge_type, product_code=code,
        product_price_tg=pr.price_tg, product_price_rmb=pr.price_rmb, total_fee=pr.total_fee,
        exchange_rate=pr.rate, payment_status="unpaid", recharge_status="pending",
    )
    db.session.add(order)
    if idempotency_key:
        db.session.execute(sa.update(IdempotencyKey)
                           .where(IdempotencyKey.user_id == user_id,
                                  IdempotencyKey.idem_key == idempotency_key)
                           .values(order_number=order.order_number))
    db.session.flush()
    # Answer with the row as inserted: detached before the commit, the order keeps the
    # values it was inserted with instead of being re-read for the answer.
    db.session.expunge(order)
    db.session.commit()
    event(log, logging.INFO, "order_created", order=order.order_number,
          phone=phones.mask(number), product=code, total_fee=pr.total_fee)
    return order, True


def _claim_idempotency_key(user_id, key):
    """Reserve the key (a unique row), or return the order it already made.

    Two concurrent creates with one key: the unique constraint lets one insert; the other
    waits for it (row lock) and then reads the order it made.

    The insert comes first: a DELETE of a key that is not there (the usual case) takes a
    gap lock on InnoDB, and two such creates -- even with different keys -- then deadlock
    on their inserts. An expired key is deleted by primary key in its own transaction,
    only when the insert found it, and the insert is tried once more.
    """
    cutoff = utcnow() - IDEMPOTENCY_TTL
    row = None
    for _ in range(2):
        try:
            db.session.add(IdempotencyKey(user_id=user_id, idem_key=key))
            db.session.flush()
            return None
        except IntegrityError:
            db.session.rollback()
        row = db.session.query(IdempotencyKey).filter_by(user_id=user_id, idem_key=key).one_or_none()
        if row is not None and row.created_at >= cutoff:
            break
        if row is not None:  # expired: forget it, then claim it afresh
            db.session.execute(sa.delete(IdempotencyKey).where(
                IdempotencyKey.id == row.id, IdempotencyKey.created_at < cutoff))
            db.session.commit()
            row = None
    order = row and row.order_number and db.session.query(Order).filter_by(order_number=row.order_number).one_or_none()
    if not order:
        raise ApiError(409, "idempotency_key_in_use", "a request with this Idempotency-Key is still running")
    event(log, logging.INFO, "idempotent_replay", order=order.order_number)
    return order


def get_own(user, order_number):
    order = db.session.query(Order).filter_by(order_number=order_number, user_id=user.id).one_or_none()
    if order is None:
        raise ApiError(404, "order_not_found", "no such order")
    return order


def list_own(user, limit, before_id=None):
    q = db.session.query(Order).filter(Order.user_id == user.id)
    if before_id is not None:
        q = q.filter(Order.id < before_id)
    rows = q.order_by(Order.id.desc()).limit(limit + 1).all()
    next_cursor = str(rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], next_cursor


def as_json(o):
    return {
        "orderNumber": o.order_number,
        "phoneNumber": o.phone_number,
        "productOperator": o.product_operator,
        "rechargeType": o.recharge_type,
        "productCode": o.product_code,
        "productPriceTg": o.product_price_tg,
        "productPriceRmb": yuan(o.total_fee),
        "totalFee": o.total_fee,
        "paymentStatus": o.payment_status,
        "rechargeStatus": o.recharge_status,
        "paidAt": iso(o.paid_at),
        "rechargedAt": iso(o.recharged_at),
        "refundedAt": iso(o.refunded_at),
        "createdAt": iso(o.created_at),
    }
