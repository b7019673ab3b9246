r"""An order's state: the guards that say what may happen to it, and the only writes of
its status columns (payment_status, recharge_status, recharge_at, recharged_at,
refunded_at, refund_requested_at, closed_at, submit_count) and of `version`.

    payment:  unpaid --paid--> paid --refund accepted--> refunding --WeChat confirms--> refunded
                |                ^-- REFUNDCLOSE / CHANGE: paid again, flagged refund_failed --/
                \-- ORDER_TTL_SECONDS unpaid --> closed
    recharge: pending --claim--> processing --submit--> success
                                            \-> failed   (then the refund)
                                            \-> unknown --status query--> success | failed
                                                       \-- not found, >= SWEEP_STUCK_SECONDS
                                                           after the claim: one resubmit
                                                       \-- no status query (UNITEL_STATUS_PATH
                                                           none): a person confirms with the
                                                           operator -> success | failed

Every write is one conditional UPDATE whose rowcount decides; the caller commits it.
A guard is written once and works both ways: on an Order (or a row read as one) it is
a bool, on the Order class (or a table's columns) it is the SQL condition, so the
admin page, the state machine and the sweep's selections ask the same question.
"""
import enum

import sqlalchemy as sa

from .. import config, database
from ..extensions import db
from ..models import Order
from ..timeutil import utcnow

class _Words(str, enum.Enum):
    """A status as the database and the JSON spell it: compares equal to its word."""

    def __str__(self):
        return self.value


class PaymentStatus(_Words):
    UNPAID = "unpaid"
    PAID = "paid"
    REFUNDING = "refunding"  # WeChat accepted our refund request; not yet confirmed
    REFUNDED = "refunded"    # WeChat's refund query says the money went back
    CLOSED = "closed"        # unpaid past ORDER_TTL_SECONDS, closed at WeChat


class RechargeStatus(_Words):
    PENDING = "pending"
    PROCESSING = "processing"  # claimed: the submit is (or was) on its way
    SUCCESS = "success"
    FAILED = "failed"
    UNKNOWN = "unknown"        # the operator's answer was unclear


MAX_SUBMITS = 2  # the first, and one resubmit after the operator says it never arrived
# Reasons set by the machine itself while an answer is unclear; cleared when it settles.
AUTO_REASONS = ("recharge_unknown",)
# Unclear, and no status query to ask: only a person, asking the operator, can settle it.
CONFIRM = "confirm_with_operator"

_O = Order.__table__


def initial_state():
    """The state columns of a new order (shop/orders.py inserts them with the rest)."""
    return {"payment_status": PaymentStatus.UNPAID, "recharge_status": RechargeStatus.PENDING,
            "version": 0, "submit_count": 0}


# -- guards (use & and |, never `and`/`or`, so that each is also a SQL condition) ------------

def claimable(o):
    """Paid, and nobody has claimed its recharge yet."""
    return (o.payment_status == "paid") & (o.recharge_status == "pending") & (o.recharge_at == None)  # noqa: E711


def awaiting_operator(o):
    """Claimed and not settled: the operator's status query may settle it."""
    return (o.recharge_status == "processing") | (o.recharge_status == "unknown")


def refund_due(o):
    """Paid, and the recharge definitely failed: the customer gets the money back."""
    return (o.payment_status == "paid") & (o.recharge_status == "failed")


def auto_refund_due(o):
    """refund_due, and WeChat never answered a refund request for it (it was down, or the
    request never left): the sweep may send it. Once WeChat refused or closed a refund,
    only a person asks again."""
    return refund_due(o) & (o.refund_requested_at == None)  # noqa: E711


def refunding(o):
    """WeChat accepted the refund; the notice or the refund query says how it ended."""
    return o.payment_status == "refunding"


def refund_confirmable(o):
    """A refund WeChat confirms may be recorded: refunding, or still paid and failed (the
    acceptance was never recorded: a crash between WeChat's answer and our UPDATE)."""
    return refunding(o) | refund_due(o)


def lost_by_operator(o):
    """Paid, unclear, and every allowed submit spent: only a person may fail and refund it."""
    return (o.payment_status == "paid") & (o.recharge_status == "unknown") & (o.submit_count >= MAX_SUBMITS)


def expired(o, created_before):
    """Unpaid and created before `created_before` (now - ORDER_TTL_SECONDS): no longer payable."""
    return (o.payment_status == "unpaid") & (o.created_at < created_before)
def awaiting_confirmation(o):
    """Paid and unclear: without a status query, a person confirms with the operator
    whether it was done, then marks it delivered or failed."""
    return (o.payment_status == "paid") & (o.recharge_status == "unknown")


def flagged(o):
    """A person should look (anomaly_reason set)."""
    return o.anomaly_reason != None  # noqa: E711


# -- reading ---------------------------------------------------------------------------------

_BY_NUMBER = sa.select(_O).where(_O.c.order_number == sa.bindparam("n"))


def read(order_number):
    """The order, read in the open transaction, as an Order that no session tracks:
    nothing about it is written back except by the conditional UPDATEs below."""
    row = db.session.connection().execute(_BY_NUMBER, {"n": order_number}).mappings().first()
    return Order(**row) if row is not None else None


def read_fresh(order_number):
    """read(), then end the transaction, so the next statement sees fresh data (under
    REPEATABLE READ a re-read in the same transaction would show the old row)."""
    order = read(order_number)
    db.session.commit()
    return order


# -- the writes ------------------------------------------------------------------------------

_PAID = (_O.update().where(_O.c.order_number == sa.bindparam("n"), _O.c.payment_status == "unpaid")
         .values(payment_status="paid", transaction_id=sa.bindparam("tx"), paid_at=sa.bindparam("now"),
                 updated_at=sa.bindparam("now"), version=_O.c.version + 1))

_CLAIM = (_O.update()
          .where(_O.c.order_number == sa.bindparam("n"), _O.c.version == sa.bindparam("v"), claimable(_O.c))
          .values(recharge_status="processing", recharge_at=sa.bindparam("now"),
                  updated_at=sa.bindparam("now"), version=_O.c.version + 1,
                  submit_count=_O.c.submit_count + 1))

_PAYMENT_CREATED = (_O.update()
                    .where(_O.c.order_number == sa.bindparam("n"), _O.c.payment_status == "unpaid")
                    .values(payment_created_at=sa.bindparam("now"), updated_at=sa.bindparam("now")))


def mark_paid(order_number, now, transaction_id):
    """unpaid -> paid, in the open transaction; True when this call made it paid."""
    return db.session.connection().execute(
        _PAID, {"n": order_number, "now": now, "tx": transaction_id}).rowcount == 1


def claim(order, now):
    """pending -> processing from `order.version`, in the open transaction; True when this
    process won. The caller commits before anything is sent to the operator."""
    won = db.session.connection().execute(_CLAIM, {"n": order.order_number, "v": order.version,
                                                   "now": now}).rowcount == 1
    if won:
        order.version += 1
        order.recharge_status, order.recharge_at = "processing", now
        order.submit_count += 1
    return won


def mark_closed(order_number, created_before):
    """unpaid (past its payment window) -> closed, committed; True when this call closed it."""
    now = utcnow()
    result = db.session.connection().execute(
        _O.update().where(_O.c.order_number == order_number, expired(_O.c, created_before))
        .values(payment_status="closed", closed_at=now, updated_at=now, version=_O.c.version + 1))
    db.session.commit()
    return result.rowcount == 1


def note_payment_created(order_number):
    """When WeChat's trade was created: the sweep asks about unpaid orders from then on.
    Not a state change (no version): the order stays unpaid."""
    now = utcnow()
    db.session.connection().execute(_PAYMENT_CREATED, {"n": order_number, "now": now})
    db.session.commit()


def transition(order, expect_statuses, values, extra_where=(), also=None):
    """One conditional UPDATE of the recharge from `order.version`, committed; True when
    this process won.

    `also()` writes in the same transaction first (a submit's answer onto its audit
    row), committed whichever way the UPDATE goes."""
    def unit():
        if also is not None:
            also()
        result = db.session.connection().execute(
            _O.update()
            .where(_O.c.order_number == order.order_number,
                   _O.c.version == order.version,
                   _O.c.recharge_status.in_(expect_statuses),
                   *extra_where)
            .values(version=_O.c.version + 1, updated_at=utcnow(), **values))
        db.session.commit()
        return result.rowcount

    # Safe to repeat: if a commit's answer was lost, the repeat matches nothing (the
    # version moved) and we log a lost race; the sweep's status query then settles it.
    won = database.run_unit(config.current(), unit, "recharge_transition") == 1
    if won:
        order.version += 1
        for k, v in values.items():
            if not isinstance(v, sa.sql.ClauseElement):
                setattr(order, k, v)
    return won


def mark_delivered(order, now):
    """A person's word that the operator did the top-up: unknown -> success. True when
    this call made it so."""
    return transition(order, ("unknown",), {"recharge_status": "success", "recharged_at": now,
                                            "anomaly_reason": clear_auto_reason(CONFIRM)},
                      extra_where=(awaiting_confirmation(_O.c),))


def mark_failed(order):
    """A person's word that the operator did not do it: unknown -> failed (the refund is
    due). True when this call made it so."""
    return transition(order, ("unknown",), {"recharge_status": "failed",
                                            "anomaly_reason": clear_auto_reason(CONFIRM)},
                      extra_where=(awaiting_confirmation(_O.c),))


# Two statements on idx_payment_recharge_at (payment_status, recharge_status, recharge_at,
# id): a count of the range, and its first row.
_AWAITING = sa.select(sa.func.count()).select_from(_O).where(awaiting_confirmation(_O.c))
_OLDEST_AWAITING = (sa.select(_O.c.recharge_at).where(awaiting_confirmation(_O.c))
                    .order_by(_O.c.recharge_at).limit(1))


def count_awaiting_confirmation():
    """(how many, the oldest claim) of the paid, unclear orders."""
    conn = db.session.connection()
    n = conn.execute(_AWAITING).scalar()
    oldest = conn.execute(_OLDEST_AWAITING).scalar() if n else None
    db.session.commit()
    return n, oldest


def mark_refunding(order_number, now):
    """paid (recharge failed) -> refunding: WeChat accepted the refund request. Committed;
    True when this call made it so."""
    result = db.session.connection().execute(
        _O.update()
        .where(_O.c.order_number == order_number, refund_due(_O.c))
        .values(payment_status="refunding", refund_requested_at=now, updated_at=now,
                version=_O.c.version + 1))
    db.session.commit()
    return result.rowcount == 1


def note_refund_refused(order_number, now):
    """WeChat answered the refund request with a refusal: the order stays paid (no state
    change, no version), and the sweep no longer sends it on its own. In the open
    transaction; the caller commits with the flag that says why."""
    db.session.connection().execute(
        _O.update().where(_O.c.order_number == order_number, refund_due(_O.c))
        .values(refund_requested_at=now, updated_at=now))


def mark_refunded(order_number, also_clear=("refund_failed",)):
    """refunding (or paid with the recharge failed) -> refunded: WeChat confirmed the
    money went back. Committed; True when this call made it so. Clears the reasons in
    `also_clear`: the refund they were about went through."""
    now = utcnow()
    result = db.session.connection().execute(
        _O.update()
        .where(_O.c.order_number == order_number, refund_confirmable(_O.c))
        .values(payment_status="refunded", refunded_at=now, updated_at=now, version=_O.c.version + 1,
                anomaly_reason=sa.case((_O.c.anomaly_reason.in_(also_clear), None),
                                       else_=_O.c.anomaly_reason)))
    db.session.commit()
    return result.rowcount == 1


def mark_refund_failed(order_number, also=None):
    """refunding -> paid: WeChat closed the refund (REFUNDCLOSE, CHANGE). `also()` writes
    in the same transaction when this call won (the refund_failed flag). Committed; True
    when this call made it so."""
    now = utcnow()
    result = db.session.connection().execute(
        _O.update()
        .where(_O.c.order_number == order_number, refunding(_O.c))
        .values(payment_status="paid", updated_at=now, version=_O.c.version + 1))
    won = result.rowcount == 1
    if won and also is not None:
        also()
    db.session.commit()
    return won


def clear_auto_reason(*also):
    """For a transition's values: the machine's own "answer unclear" flag goes once the
    answer is clear (a person's flag, or one set on the payment, stays); so do the
    reasons in `also`."""
    return sa.case((_O.c.anomaly_reason.in_((*AUTO_REASONS, *also)), None), else_=_O.c.anomaly_reason)
