"""Creating and reading a customer's orders. The price is ours, never the client's."""
import logging
import secrets
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from . import catalog, live_prices, phones
from .. import limits, metrics
from ..errors import Conflict, Invalid, NotFound
from ..extensions import db
from ..fulfil import state
from ..logs import event
from ..models import IdempotencyKey, Order
from ..validators import normalize_register_no
from .pricing import checked_rate, price
from ..timeutil import utcnow

log = logging.getLogger("elife.orders")
IDEMPOTENCY_TTL = timedelta(hours=24)


def new_order_number():
    """ORD + UTC second + 8 random digits: sortable by eye, not guessable from the last."""
    return "ORD" + utcnow().strftime("%Y%m%d%H%M%S") + f"{secrets.randbelow(10**8):08d}"


def create(user, *, phone_number, operator, recharge_type, product_code, settings, unitel,
           refuse_if_operator_down, idempotency_key=None, vat_register_no=None):
    """A new unpaid order (or, with a key already used, the order it made: created False).
    `unitel` asks the live package list; `refuse_if_operator_down(operator)` raises while
    the operator cannot take top-ups (the breaker), so no money is taken for one."""
    if operator not in phones.SUPPORTED_OPERATORS:
        raise Invalid("unsupported_operator", f"we do not sell top-ups for {operator}")
    if recharge_type not in catalog.RECHARGE_TYPES:
        raise Invalid("invalid_recharge_type", "rechargeType must be VOICE or DATA")
    number = phones.check_operator(phone_number, operator)
    refuse_if_operator_down(operator)  # no money taken for a top-up we cannot deliver now
    if vat_register_no is not None:
        vat_register_no = normalize_register_no(vat_register_no)
        if vat_register_no is None:
            raise Invalid("invalid_vat_register_no", "vatRegisterNo must be a 7-digit company register "
                                                     "number or 2 Cyrillic letters and 8 digits")
    found = catalog.find_active(operator, recharge_type, product_code)
    if found is None:
        raise Invalid("unknown_product", "no such product for this operator and type")
    code, price_tg, rate, operator_code = found
    pr = price(price_tg, checked_rate(rate))  # PricingError: no rate, or no price for it
    # The operator's live list for this number (cached): may refuse the product or its price.
    live_prices.check(settings, unitel, operator, number, recharge_type, operator_code, price_tg)

    # Counts valid creates only. Without a key the counters commit with the order: one
    # commit per order. With one they commit first, as the key's claim may roll back.
    limits.orders_by_user(settings, user.id, commit=bool(idempotency_key))
    if idempotency_key:
        existing = _claim_idempotency_key(user.id, idempotency_key)
        if existing is not None:
            asked = (number, operator, recharge_type, code, vat_register_no)
            had = (existing.phone_number, existing.product_operator, existing.recharge_type,
                   existing.product_code, existing.vat_register_no)
            if asked != had:
                raise Invalid("idempotency_key_reused",
                               "this Idempotency-Key was used for a different order")
            return existing, False

    now = utcnow()
    order = dict(
        order_number=new_order_number(), user_id=user.id, phone_number=number,
        product_operator=operator, recharge_type=recharge_type, product_code=code,
        product_price_tg=pr.price_tg, product_price_rmb=pr.price_rmb, total_fee=pr.total_fee,
        exchange_rate=pr.rate, **state.initial_state(),
        created_at=now, updated_at=now,
        operator_code=operator_code, vat_register_no=vat_register_no)
    # Core, not the ORM unit of work: this is the busiest write path (bench/notes.md).
    conn = db.session.connection()
    conn.execute(_INSERT, order)
    if idempotency_key:
        conn.execute(_KEY_ORDER, {"uid": user.id, "key": idempotency_key, "n": order["order_number"]})
    db.session.commit()
    metrics.order_created()
    event(log, logging.INFO, "order_created", order=order["order_number"],
          phone=phones.mask(number), product=code, total_fee=pr.total_fee)
    return Order(**order), True


_INSERT = Order.__table__.insert()
_KEY_ORDER = (IdempotencyKey.__table__.update()
              .where(IdempotencyKey.user_id == sa.bindparam("uid"),
                     IdempotencyKey.idem_key == sa.bindparam("key"))
              .values(order_number=sa.bindparam("n")))


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
        raise Conflict("idempotency_key_in_use", "a request with this Idempotency-Key is still running")
    event(log, logging.INFO, "idempotent_replay", order=order.order_number)
    return order


def get_own(user, order_number):
    order = db.session.query(Order).filter_by(order_number=order_number, user_id=user.id).one_or_none()
    if order is None:
        raise NotFound("order_not_found", "no such order")
    # Detached: a later commit (the payment's) must not expire it into a re-read.
    db.session.expunge(order)
    return order


def list_own(user, limit, before_id=None):
    q = db.session.query(Order).filter(Order.user_id == user.id)
    if before_id is not None:
        q = q.filter(Order.id < before_id)
    rows = q.order_by(Order.id.desc()).limit(limit + 1).all()
    next_cursor = str(rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], next_cursor

