r"""An order's state: its statuses, the guards that say what may happen to it, and every
write of its state columns (payment_status, recharge_status, recharge_at, recharged_at,
refunded_at, refund_requested_at, closed_at, payment_created_at, submit_count, the
receipt, version, and the anomaly flag).

    payment:  unpaid --mark_paid--> paid --start_refund--> refunding --confirm_refund--> refunded
                |                    ^ \------------ confirm_refund ----------------------^
                |                    \---- refund_closed (REFUNDCLOSE / CHANGE) --/
                \-- close_unpaid (ORDER_TTL_SECONDS unpaid) --> closed
    recharge: pending --claim--> processing --settle_success--> success
                                   |  ^   \--settle_failed---> failed   (then the refund)
                                   |  |    \--mark_unknown---> unknown --settle_success | settle_failed
                                   |  \------- resubmit -------/ |         (the status query)
                                   \------- resubmit (stuck) ----/ |-- mark_delivered | mark_failed
                                                                   |   (a person, no status query)
                                                                   \-- give_up (a person: the
                                                                       operator lost every submit)

MOVES below is that picture as data: each named move, the status column it moves, the
states it may start from, where it ends, what else must hold, and who asks for it. Each
move is one conditional UPDATE whose WHERE is built from its row of the table; its
rowcount decides, and it returns the row as the database now holds it (None when it did
not happen). A guard is written once and works both ways: on an Order it is a bool, on
the Order class it is the SQL condition, so the admin page, the moves and the sweep's
selections ask the same question. Writes that are not moves (no status changes, no
version): note_payment_created, note_refund_refused, flag, resolve.

A move that tells the customer something (its row's `earns`: recharged, failed_refunded,
refunded) writes that message's outbox row (notify/outbox.py) in its own transaction,
beside its UPDATE: both are committed, or neither. Sending it is not a move and never
waits on one.
"""
import enum
import json
from dataclasses import dataclass

import sqlalchemy as sa

from .. import database
from ..extensions import db
from ..models import Order
from ..notify import outbox
from ..timeutil import iso, utcnow
from . import audit


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


P, R = PaymentStatus, RechargeStatus
PAID_STATUSES = (P.PAID, P.REFUNDING, P.REFUNDED)  # paid at some point

MAX_SUBMITS = 2  # the first, and one resubmit after the operator says it never arrived
# Reasons set by the machine itself while an answer is unclear; cleared when it settles.
AUTO_REASONS = ("recharge_unknown",)
# Unclear, and no status query to ask: only a person, asking the operator, can settle it.
CONFIRM = "confirm_with_operator"
LOST = "operator_lost_request"
DETAILS_CAP = 60_000  # anomaly_details is TEXT (64 KiB): stop appending before it overflows

_O = Order.__table__


def initial_state():
    """The state columns of a new order (shop/orders.py inserts them with the rest)."""
    return {"payment_status": P.UNPAID, "recharge_status": R.PENDING, "version": 0, "submit_count": 0}


def _one_of(value, words):
    """`value in words`, on a plain value or as SQL on a column."""
    if hasattr(value, "in_"):  # a column, or the Order class's attribute
        return value.in_(words)
    return value in words


# -- guards (use & and |, never `and`/`or`, so that each is also a SQL condition) ------------

def unpaid(o):
    return o.payment_status == P.UNPAID


def paid(o):
    return o.payment_status == P.PAID


def paid_ever(o):
    """Paid at some point: paid, refunding or refunded."""
    return _one_of(o.payment_status, PAID_STATUSES)


def claimable(o):
    """Paid, and nobody has claimed its recharge yet."""
    return paid(o) & (o.recharge_status == R.PENDING) & (o.recharge_at == None)  # noqa: E711


def processing(o):
    """Claimed, the submit on its way (or its answer never recorded)."""
    return o.recharge_status == R.PROCESSING


def awaiting_operator(o):
    """Claimed and not settled: the operator's status query may settle it."""
    return _one_of(o.recharge_status, (R.PROCESSING, R.UNKNOWN))


def delivered(o):
    return o.recharge_status == R.SUCCESS


def refund_due(o):
    """Paid, and the recharge definitely failed: the customer gets the money back."""
    return paid(o) & (o.recharge_status == R.FAILED)


def auto_refund_due(o):
    """refund_due, and WeChat never answered a refund request for it (it was down, or the
    request never left): the sweep may send it. Once WeChat refused or closed a refund,
    only a person asks again."""
    return refund_due(o) & (o.refund_requested_at == None)  # noqa: E711


def refunding(o):
    """WeChat accepted the refund; the notice or the refund query says how it ended."""
    return o.payment_status == P.REFUNDING


def refunded(o):
    return o.payment_status == P.REFUNDED


def refund_confirmable(o):
    """A refund WeChat confirms may be recorded: refunding, or still paid and failed (the
    acceptance was never recorded: a crash between WeChat's answer and our UPDATE)."""
    return refunding(o) | refund_due(o)


def lost_by_operator(o):
    """Paid, unclear, and every allowed submit spent: only a person may fail and refund it."""
    return paid(o) & (o.recharge_status == R.UNKNOWN) & (o.submit_count >= MAX_SUBMITS)


def expired(o, created_before):
    """Unpaid and created before `created_before` (now - ORDER_TTL_SECONDS): no longer payable."""
    return unpaid(o) & (o.created_at < created_before)


def closed(o):
    return o.payment_status == P.CLOSED


def awaiting_confirmation(o):
    """Paid and unclear: without a status query, a person confirms with the operator
    whether it was done, then marks it delivered or failed."""
    return paid(o) & (o.recharge_status == R.UNKNOWN)


def stuck(o, claimed_before):
    """Claimed before `claimed_before` (now - SWEEP_STUCK_SECONDS) and still `processing`:
    its worker may have died mid-submit."""
    return (o.recharge_status == R.PROCESSING) & (o.recharge_at < claimed_before)


def status_query_due(o, claimed_before):
    """Unclear since before `claimed_before`, and the sweep may still ask about it: an
    order the operator lost every submit of (flagged, or already seen by a person) waits
    for a person; after a resubmit that was unclear, the sweep keeps asking."""
    return ((o.recharge_status == R.UNKNOWN) & (o.recharge_at < claimed_before)
            & ((o.submit_count < MAX_SUBMITS)
               | ((sa.func.coalesce(o.anomaly_reason, "") != LOST) & (o.resolved_at == None))))  # noqa: E711


def payment_created_between(o, since, before):
    """Unpaid, its WeChat trade created in [since, before): the sweep asks WeChat's order
    query whether its notice was lost."""
    return unpaid(o) & (o.payment_created_at >= since) & (o.payment_created_at < before)


def flagged(o):
    """A person should look (anomaly_reason set)."""
    return o.anomaly_reason != None  # noqa: E711


# -- the moves -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Move:
    name: str
    column: str     # the status column it moves
    froms: tuple    # the states it may start from
    to: str
    when: object = None  # what else must hold: a guard (bool on an order, SQL on Order)
    by: str = ""    # who asks for it
    earns: str = ""  # the subscribe message it earns the customer (notify/outbox.py), if any

    def allowed(self, o):
        cond = _one_of(getattr(o, self.column), self.froms)
        return cond & self.when(o) if self.when is not None else cond


PAYMENT, RECHARGE = "payment_status", "recharge_status"

MOVES = (
    Move("mark_paid", PAYMENT, (P.UNPAID,), P.PAID,
         by="payments.confirm_paid: the callback, the sweep and the reconciliation, once "
            "WeChat's order query confirms the payment"),
    Move("close_unpaid", PAYMENT, (P.UNPAID,), P.CLOSED,
         by="the sweep, ORDER_TTL_SECONDS after creation, once WeChat closed the trade"),
    Move("start_refund", PAYMENT, (P.PAID,), P.REFUNDING, when=refund_due,
         by="refunds.refund, when WeChat accepts the refund request"),
    Move("confirm_refund", PAYMENT, (P.REFUNDING, P.PAID), P.REFUNDED, when=refund_confirmable,
         by="refunds.settle, when WeChat's refund query says SUCCESS for the full amount",
         earns="refunded"),
    Move("refund_closed", PAYMENT, (P.REFUNDING,), P.PAID,
         by="refunds.settle, when the refund query says REFUNDCLOSE or CHANGE (flagged refund_failed)"),
    Move("claim", RECHARGE, (R.PENDING,), R.PROCESSING, when=claimable,
         by="recharge: the callback's commit, the sweep; committed before the submit"),
    Move("resubmit", RECHARGE, (R.UNKNOWN, R.PROCESSING), R.PROCESSING,
         by="recharge.reconcile, once, when the status query says the first submit never "
            "arrived, SWEEP_STUCK_SECONDS after the claim"),
    Move("settle_success", RECHARGE, (R.PROCESSING, R.UNKNOWN), R.SUCCESS,
         by="recharge: the submit's answer, or the status query", earns="recharged"),
    Move("settle_failed", RECHARGE, (R.PROCESSING, R.UNKNOWN), R.FAILED,
         by="recharge: a definite refusal, in the answer or the status query (then the refund)",
         earns="failed_refunded"),
    Move("mark_unknown", RECHARGE, (R.PROCESSING,), R.UNKNOWN,
         by="recharge: an unclear answer, or a claim stuck past SWEEP_STUCK_SECONDS"),
    Move("mark_delivered", RECHARGE, (R.UNKNOWN,), R.SUCCESS, when=awaiting_confirmation,
         by="a person on /admin, after asking Unitel (no status query)", earns="recharged"),
    Move("mark_failed", RECHARGE, (R.UNKNOWN,), R.FAILED, when=awaiting_confirmation,
         by="a person on /admin, after asking Unitel (no status query); then the refund",
         earns="failed_refunded"),
    Move("give_up", RECHARGE, (R.UNKNOWN,), R.FAILED, when=lost_by_operator,
         by="a person on /admin, when the operator has no record of any submit; then the refund",
         earns="failed_refunded"),
)
MOVE = {m.name: m for m in MOVES}


def can(order, name):
    """Whether the move may happen to the order as read."""
    return bool(MOVE[name].allowed(order))


# -- reading ---------------------------------------------------------------------------------

_BY_NUMBER = sa.select(_O).where(_O.c.order_number == sa.bindparam("n"))


def read(order_number):
    """The order, read in the open transaction, as an Order that no session tracks:
    nothing about it is written back except by the moves below."""
    row = db.session.connection().execute(_BY_NUMBER, {"n": order_number}).mappings().first()
    return Order(**row) if row is not None else None


def read_fresh(order_number):
    """read(), then end the transaction, so the next statement sees fresh data (under
    REPEATABLE READ a re-read in the same transaction would show the old row)."""
    order = read(order_number)
    db.session.commit()
    return order


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


# -- how a move is written -------------------------------------------------------------------
# Every move is pinned to the version its caller read: it happens only if no move has
# happened since (each bumps version). So the row it leaves is known without reading it
# again: the order as read, with what the move wrote. Only flag() and the other notes
# write beside the moves (never a status, never version); a move that flags in its own
# commit (mark_unknown, refund_closed) reads the row back.

@dataclass(frozen=True, eq=False)  # compared by identity: each is built once, below
class _Computed:
    """A value the UPDATE computes from the row (`sql`), and the same on the order as read."""
    sql: object
    on: object  # order -> value


_ONE_MORE_SUBMIT = _Computed(_O.c.submit_count + 1, lambda o: o.submit_count + 1)


def _clear(*reasons):
    """anomaly_reason goes if it is one of `reasons` (the machine's own "answer unclear"
    flags, or the one the move settles); a person's flag, or one set on the payment, stays."""
    return _Computed(sa.case((_O.c.anomaly_reason.in_(reasons), None), else_=_O.c.anomaly_reason),
                     lambda o: None if o.anomaly_reason in reasons else o.anomaly_reason)


_CLEAR_UNCLEAR = _clear(*AUTO_REASONS, CONFIRM)
_CLEAR_LOST = _clear(*AUTO_REASONS, LOST)
_CLEAR_REFUND_FAILED = _clear("refund_failed")
_SAME_SUBMITS = _O.c.submit_count == sa.bindparam("submits")  # resubmit, give_up: no submit since
_EXPIRED = expired(_O.c, sa.bindparam("created_before"))      # close_unpaid
_STATEMENTS = {}


def _statement(name, columns, computed, extra):
    """The move's UPDATE, built once: its WHERE from the move's row of the table, pinned
    to the version read; the statuses and `version` it sets; `columns` as parameters."""
    key = (name, columns, tuple(computed.items()), extra)
    stmt = _STATEMENTS.get(key)
    if stmt is None:
        move = MOVE[name]
        stmt = _STATEMENTS[key] = (
            _O.update()
            .where(_O.c.order_number == sa.bindparam("n"), _O.c.version == sa.bindparam("v"),
                   move.allowed(_O.c), *extra)
            .values(**{move.column: move.to}, version=_O.c.version + 1, updated_at=sa.bindparam("now"),
                    **{c: sa.bindparam(f"set_{c}") for c in columns},
                    **{c: value.sql for c, value in computed.items()}))
    return stmt


def _update(name, order, values=None, computed=None, extra=(), now=None, **params):
    """`name`'s move of `order` (as read) in the open transaction: one conditional UPDATE
    whose rowcount decides. Returns the order as the move left it, or None when the WHERE
    matched nothing (another process moved it first, or it may not make this move). A
    move that earns a message writes its outbox row in the same transaction."""
    values, computed, now = values or {}, computed or {}, now or utcnow()
    move = MOVE[name]
    stmt = _statement(name, tuple(values), computed, extra)
    result = db.session.connection().execute(stmt, {
        "n": order.order_number, "v": order.version, "now": now,
        **{f"set_{c}": v for c, v in values.items()}, **params})
    if result.rowcount != 1:
        return None
    after = {c.key: getattr(order, c.key) for c in _O.columns}
    after.update(values)
    after.update({c: value.on(order) for c, value in computed.items()})
    after.update({move.column: move.to, "version": order.version + 1, "updated_at": now})
    moved = Order(**after)
    if move.earns:
        outbox.earn(db.session.connection(), moved, move.earns, now)
    return moved


def _committed(settings, what, unit):
    """`unit` in a transaction of its own, committed, retried on a dropped connection or
    a deadlock. Safe to repeat: a repeat after a commit whose acknowledgement was lost
    matches nothing (the version moved), and the lost race is logged by the caller."""
    def run():
        out = unit()
        db.session.commit()
        return out
    return database.run_unit(settings, run, what)


# -- payment moves ---------------------------------------------------------------------------

def mark_paid(order, transaction_id, now=None):
    """unpaid -> paid, in the open transaction (the caller claims in the same commit)."""
    now = now or utcnow()
    return _update("mark_paid", order, {"transaction_id": transaction_id, "paid_at": now}, now=now)


def close_unpaid(order, created_before):
    """unpaid past its payment window -> closed, committed."""
    now = utcnow()
    closed_row = _update("close_unpaid", order, {"closed_at": now}, extra=(_EXPIRED,), now=now,
                         created_before=created_before)
    db.session.commit()
    return closed_row


def start_refund(order, now=None):
    """paid (recharge failed) -> refunding: WeChat accepted the refund request. Committed."""
    now = now or utcnow()
    row = _update("start_refund", order, {"refund_requested_at": now}, now=now)
    db.session.commit()
    return row


def confirm_refund(order):
    """refunding (or paid with the recharge failed) -> refunded: WeChat confirmed the
    money went back. Committed. Clears refund_failed: the refund it was about went through."""
    now = utcnow()
    row = _update("confirm_refund", order, {"refunded_at": now}, {"anomaly_reason": _CLEAR_REFUND_FAILED}, now=now)
    db.session.commit()
    return row


def refund_closed(order, words):
    """refunding -> paid: WeChat closed the refund (REFUNDCLOSE, CHANGE). Flagged
    refund_failed with WeChat's words in the same commit when this call won."""
    row = _update("refund_closed", order)
    if row is not None:
        _flag(order.order_number, "refund_failed", words)
        row = read(order.order_number)
    db.session.commit()
    return row


# -- recharge moves --------------------------------------------------------------------------

def claim(order, now=None):
    """pending -> processing, in the open transaction. The caller commits before anything
    is sent to the operator."""
    now = now or utcnow()
    return _update("claim", order, {"recharge_at": now}, {"submit_count": _ONE_MORE_SUBMIT}, now=now)


def resubmit(settings, order):
    """unknown (or stuck processing) -> processing for the one second submit, committed."""
    return _committed(settings, "resubmit", lambda: _update(
        "resubmit", order, computed={"submit_count": _ONE_MORE_SUBMIT}, extra=(_SAME_SUBMITS,),
        submits=order.submit_count))


def settle_success(settings, order, receipt=None, also=None):
    """processing or unknown -> success, with the operator's receipt; committed.
    `also()` writes in the same transaction (the submit's answer onto its audit row),
    committed whichever way the UPDATE goes."""
    def unit():
        now = utcnow()
        return _update("settle_success", order, {"recharged_at": now, **_receipt_values(receipt)},
                       {"anomaly_reason": _CLEAR_UNCLEAR}, now=now)
    return _committed(settings, "settle_success", _with(also, unit))


def settle_failed(settings, order, also=None):
    """processing or unknown -> failed (a definite refusal; the refund follows); committed."""
    return _committed(settings, "settle_failed", _with(also, lambda: _update(
        "settle_failed", order, computed={"anomaly_reason": _CLEAR_UNCLEAR})))


def mark_unknown(settings, order, reason, details, also=None):
    """processing -> unknown (an unclear answer, or a claim stuck past SWEEP_STUCK_SECONDS),
    flagged `reason` in the same commit; committed."""
    def unit():
        row = _update("mark_unknown", order)
        if row is not None:
            _flag(order.order_number, reason, details)
            row = read(order.order_number)
        return row
    return _committed(settings, "mark_unknown", _with(also, unit))


def mark_delivered(settings, order):
    """A person's word that the operator did the top-up: unknown -> success."""
    def unit():
        now = utcnow()
        return _update("mark_delivered", order, {"recharged_at": now}, {"anomaly_reason": _CLEAR_UNCLEAR}, now=now)
    return _committed(settings, "mark_delivered", unit)


def mark_failed(settings, order):
    """A person's word that the operator did not do it: unknown -> failed (the refund is due)."""
    return _committed(settings, "mark_failed", lambda: _update(
        "mark_failed", order, computed={"anomaly_reason": _CLEAR_UNCLEAR}))


def give_up(settings, order):
    """A person's decision on an order the operator lost every submit of: unknown -> failed."""
    return _committed(settings, "give_up", lambda: _update(
        "give_up", order, computed={"anomaly_reason": _CLEAR_LOST}, extra=(_SAME_SUBMITS,),
        submits=order.submit_count))


def _with(also, unit):
    if also is None:
        return unit

    def both():
        also()
        return unit()
    return both


def _receipt_values(receipt):
    if receipt is None:
        return {}
    return {"receipt_bill_id": receipt.bill_id or None, "receipt_lottery": receipt.lottery or None,
            "receipt_qr_data": receipt.qr_data or None, "receipt_amount": receipt.amount or None,
            "receipt_vat": receipt.vat or None}


# -- writes that are not moves (no status, no version) ---------------------------------------

_PAYMENT_CREATED = (_O.update().where(_O.c.order_number == sa.bindparam("n"), unpaid(_O.c))
                    .values(payment_created_at=sa.bindparam("now"), updated_at=sa.bindparam("now")))


def note_payment_created(order_number):
    """When WeChat's trade was created: the sweep asks about unpaid orders from then on.
    Committed; the order stays unpaid."""
    now = utcnow()
    db.session.connection().execute(_PAYMENT_CREATED, {"n": order_number, "now": now})
    db.session.commit()


def note_refund_refused(order_number, now, words):
    """WeChat refused the refund request, or closed a refund we never recorded as
    accepted: the order stays paid, the sweep no longer sends it on its own, and it is
    flagged refund_failed with WeChat's words. Committed."""
    db.session.connection().execute(
        _O.update().where(_O.c.order_number == order_number, refund_due(_O.c))
        .values(refund_requested_at=now, updated_at=now))
    _flag(order_number, "refund_failed", words)
    db.session.commit()


def flag(order_number, reason, details):
    """A person should look: anomaly_reason (the latest why) and anomaly_details (every
    why, one timestamped line each). Committed. Not a state change: it leaves `version`
    alone, so it never makes a concurrent claim lose."""
    _flag(order_number, reason, details)
    db.session.commit()


def _flag(order_number, reason, details):
    now = utcnow()
    said = details if isinstance(details, str) else json.dumps(details, ensure_ascii=False, default=str)
    line = f"{iso(now)} {reason}: {said}\n"
    current = sa.func.coalesce(_O.c.anomaly_details, "")
    db.session.connection().execute(
        _O.update().where(_O.c.order_number == order_number).values(
            anomaly_reason=reason[:100],
            anomaly_details=sa.case((sa.func.length(current) < DETAILS_CAP, current + line[:2000]),
                                    else_=current),
            updated_at=now))


def resolve(order_number, actor, note, expected_reason=None):
    """A person closes an anomaly: clear anomaly_reason, stamp resolved_at and
    resolved_note, and append who and why to anomaly_details, in one UPDATE, with the
    audit row in the same transaction (the caller commits). Like `flag`, it leaves
    `version` and the statuses alone: resolving is a note, not a state change.

    `expected_reason` is the reason the person saw: if the machine flagged something
    else since, nothing is changed. Returns True when the order was resolved."""
    note = (note or "").strip()
    if not note:
        raise ValueError("a note is required to resolve an anomaly")
    now = utcnow()
    said = f" by {actor}: {note}".replace("\r", " ").replace("\n", " ")[:2000] + "\n"
    current = sa.func.coalesce(_O.c.anomaly_details, "")
    # "<time> resolved <the reason it had> by <actor>: <note>", the reason read by the UPDATE itself
    line = sa.literal(f"{iso(now)} resolved ") + sa.func.coalesce(_O.c.anomaly_reason, "") + sa.literal(said)
    where = [_O.c.order_number == order_number, flagged(_O.c)]
    if expected_reason is not None:
        where.append(_O.c.anomaly_reason == expected_reason)
    # ordered_values: MySQL evaluates SET left to right, so anomaly_details must read the
    # reason before anomaly_reason is cleared.
    result = db.session.connection().execute(
        _O.update().where(*where).ordered_values(
            (_O.c.anomaly_details, sa.case((sa.func.length(current) < DETAILS_CAP, current + line),
                                           else_=current)),
            (_O.c.anomaly_reason, None),
            (_O.c.resolved_at, now),
            (_O.c.resolved_note, note[:255]),
            (_O.c.updated_at, now),
        ))
    if result.rowcount != 1:
        return False
    audit.record_event(order_number, "anomaly_resolved", actor, note)
    return True
