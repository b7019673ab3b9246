r"""The recharge state machine: the only writer of recharge_status, recharge_at,
recharged_at, submit_count and (with payments.py) version.

    pending --claim--> processing --submit--> success
                                          \-> failed --refund--> (payment) refunded
                                          \-> unknown --status query--> success | failed
                                                     \-- not found, >= SWEEP_STUCK_SECONDS
                                                         after the claim: one resubmit

Every transition is one conditional UPDATE whose rowcount decides, committed before
anything is sent. The claim is committed before the operator is called, so at most one
process ever submits an order; a crash after the claim leaves `processing` with
`recharge_at` set, which the sweep settles through the status query.
"""
import logging
import secrets
from datetime import timedelta

import sqlalchemy as sa

from . import anomalies, audit
from .. import config, database
from ..shop import phones
from ..clients import unitel
from ..clients.wechat import WeChatClient, WeChatRejected, WeChatUnavailable
from ..extensions import db
from ..logs import event
from ..models import Order
from ..timeutil import utcnow

log = logging.getLogger("elife.recharge")

# Reasons set by the machine itself while an answer is unclear; cleared when it settles.
AUTO_REASONS = ("recharge_unknown",)
MAX_SUBMITS = 2  # the first, and one resubmit after the operator says it never arrived


_O = Order.__table__
_BY_NUMBER = sa.select(_O).where(_O.c.order_number == sa.bindparam("n"))


def _read(order_number):
    """The order, read in the open transaction, as an Order that no session tracks:
    nothing about it is written back except by the conditional UPDATEs below."""
    row = db.session.connection().execute(_BY_NUMBER, {"n": order_number}).mappings().first()
    return Order(**row) if row is not None else None


def _load(order_number):
    """Read the order and end the transaction, so the next statement sees fresh data
    (under REPEATABLE READ a re-read in the same transaction would show the old row)."""
    order = _read(order_number)
    db.session.commit()
    return order


def _transition(order, expect_statuses, values, extra_where=(), also=None):
    """One conditional UPDATE from `order.version`; True when this process won.

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


# -- entry points -------------------------------------------------------------------------

def recharge_paid_order(order_number, actor):
    """Claim a paid order and top it up. Called by the sweep, and by the callback for a
    notice of an order already paid.

    Returns the status this call settled it in, or None when it did not claim it."""
    marker = new_claim_marker()

    def unit():
        claim = claim_in_transaction(order_number, actor, marker=marker)
        db.session.commit()
        return claim

    return submit_claimed(database.run_unit(config.current(), unit, "claim"), actor)


def new_claim_marker():
    return secrets.token_hex(8)


def claim_in_transaction(order_number, actor, known=None, marker=None):
    """The claim, in the caller's open transaction: read the order, one conditional
    UPDATE (rowcount 1 wins), and the audit row of the submit it allows. The caller
    commits -- before anything is sent -- and then calls submit_claimed.

    payments.confirm_paid calls it in the transaction of its paid UPDATE, so a paid
    order is claimed in the same commit, and passes the order as that UPDATE left it
    (`known`), which saves reading it; should its version be stale, the claim matches
    nothing and the row (locked by the paid UPDATE) is read and claimed as it is.

    The caller's unit is retried (database.run_unit) when the connection drops, also
    after a COMMIT the server did apply. `marker` goes onto the audit row; a claim that
    finds nothing to claim looks for it, and finding it means the claim is ours,
    committed by an attempt whose acknowledgement was lost.

    Returns (order, audit row id), or None when this process did not win (logged:
    already_processing)."""
    order = known if known is not None else _read(order_number)
    while (order is not None and order.payment_status == "paid" and order.recharge_at is None
           and order.recharge_status == "pending"):
        now = utcnow()
        if db.session.connection().execute(_CLAIM, {
                "n": order_number, "v": order.version, "now": now}).rowcount == 1:
            order.version += 1
            order.recharge_status, order.recharge_at, order.submit_count = "processing", now, order.submit_count + 1
            return order, audit.insert_sending(order, "submit", marker)
        if known is None:
            break
        order, known = _read(order_number), None
    if order is None:
        event(log, logging.ERROR, "order_missing", order=order_number, actor=actor)
        return None
    mine = marker and our_claim(order_number, marker)
    if mine:
        return mine
    _log_lost_claim(order, actor)
    return None


def our_claim(order_number, marker):
    """The claim made with `marker` and committed, as claim_in_transaction returns it;
    None when there is none."""
    call_id = audit.sent_with_marker(order_number, marker)
    if call_id is None:
        return None
    event(log, logging.WARNING, "claim_found_after_retry", order=order_number,
          message="the claim's commit went through though its acknowledgement was lost")
    return _read(order_number), call_id


_CLAIM = (_O.update()
          .where(_O.c.order_number == sa.bindparam("n"), _O.c.version == sa.bindparam("v"),
                 _O.c.recharge_status == "pending", _O.c.payment_status == "paid",
                 _O.c.recharge_at.is_(None))
          .values(recharge_status="processing", recharge_at=sa.bindparam("now"),
                  updated_at=sa.bindparam("now"), version=_O.c.version + 1,
                  submit_count=_O.c.submit_count + 1))


def submit_claimed(claim, actor):
    """After the claim is committed: the one submit, and its settle."""
    if claim is None:
        return None
    order, call_id = claim
    event(log, logging.INFO, "claim_won", order=order.order_number, actor=actor, version=order.version)
    return _send(order, call_id, "submit", actor)


def reconcile(order_number, actor, force=False):
    """Settle an `unknown` (or stuck `processing`) order through the operator's status query.

    `force` lets a person ask before SWEEP_STUCK_SECONDS for a look; it never allows an
    early resubmit.
    """
    s = config.current()
    order = _load(order_number)
    if order is None or order.recharge_status not in ("unknown", "processing"):
        return order and order.recharge_status
    age = (utcnow() - order.recharge_at).total_seconds() if order.recharge_at else 0
    stuck = age >= s.SWEEP_STUCK_SECONDS
    if order.recharge_status == "processing" and not (stuck or force):
        event(log, logging.INFO, "still_processing", order=order_number, actor=actor, age=int(age))
        return "processing"

    answer = _ask_status(order, actor)
    if answer.outcome in (unitel.SUCCESS, unitel.FAILED):
        return _settle(order, answer, actor)
    if answer.outcome != unitel.NOT_FOUND:
        # Pending at the operator, or no clear answer: ask again later. A claim this old
        # that is still 'processing' (its worker died) becomes 'unknown', flagged.
        if order.recharge_status == "processing" and stuck:
            return _to_unknown(order, "recharge_unknown", actor,
                               f"stuck processing; status query: {answer.outcome} {answer.code}".strip())
        return order.recharge_status
    if not stuck:
        event(log, logging.INFO, "not_found_too_soon", order=order_number, actor=actor, age=int(age))
        return order.recharge_status
    if order.submit_count >= MAX_SUBMITS:
        # Only a person can decide now; the sweep leaves 'unknown' orders at this count alone,
        # so this flag (and its ERROR line) is written once.
        event(log, logging.ERROR, "operator_lost_request", order=order_number, submits=order.submit_count)
        return _to_unknown(order, "operator_lost_request", actor,
                           f"the operator has no record of {order.submit_count} submits; a person must decide")
    # The one second submit: same request id, only after the operator said it never arrived.
    won = _transition(order, ("unknown", "processing"),
                      {"recharge_status": "processing", "submit_count": _O.c.submit_count + 1},
                      extra_where=(_O.c.submit_count == order.submit_count,))
    if not won:
        _log_lost_claim(order, actor)
        return None
    order.submit_count += 1
    event(log, logging.WARNING, "resubmit", order=order_number, actor=actor,
          message="operator has no record of the first submit")
    return _submit(order, "resubmit", actor)


def give_up(order_number, actor):
    """A person's decision on an order the operator lost every allowed submit of
    (operator_lost_request): ask the operator once more, settle by its answer if it now
    knows the request, and if it still has no record, mark the recharge failed and
    refund the customer. Nothing is ever sent again.

    Returns the recharge status it ended in, or None when the order is not such an
    order (or another process settled it first)."""
    order = _load(order_number)
    if (order is None or order.payment_status != "paid" or order.recharge_status != "unknown"
            or order.submit_count < MAX_SUBMITS):
        return None
    answer = _ask_status(order, actor)
    if answer.outcome in (unitel.SUCCESS, unitel.FAILED):
        return _settle(order, answer, actor)
    if answer.outcome != unitel.NOT_FOUND:
        return "unknown"  # pending or unclear: the person asks again later
    won = _transition(order, ("unknown",), {
        "recharge_status": "failed",
        "anomaly_reason": _clear_auto_reason("operator_lost_request")},
        extra_where=(_O.c.submit_count == order.submit_count,))
    if not won:
        _log_lost_claim(order, actor)
        return None
    event(log, logging.WARNING, "given_up", order=order_number, actor=actor, submits=order.submit_count,
          message="the operator has no record of any submit; recharge failed, refunding")
    refund(order_number, actor)
    return "failed"


def refund(order_number, actor):
    """Refund a `failed` order in full; idempotent (WeChat dedupes on out_refund_no)."""
    order = _load(order_number)
    if order is None or order.payment_status != "paid" or order.recharge_status != "failed":
        return order and order.payment_status
    try:
        WeChatClient(config.current()).refund(order_number=order_number, total_fee=order.total_fee,
                                         reason="top-up failed")
    except (WeChatUnavailable, WeChatRejected) as exc:
        audit.record_call(order, "refund", "error", str(exc))
        anomalies.flag(order_number, "refund_failed", f"{type(exc).__name__}: {exc}")
        db.session.commit()
        event(log, logging.ERROR, "refund_failed", order=order_number, actor=actor, error=str(exc))
        return "paid"
    audit.record_call(order, "refund", "success", f"refunded {order.total_fee} fen")
    db.session.commit()
    now = utcnow()
    result = db.session.execute(
        sa.update(Order)
        .where(Order.order_number == order_number, Order.payment_status == "paid",
               Order.recharge_status == "failed")
        .values(payment_status="refunded", refunded_at=now, updated_at=now, version=Order.version + 1,
                anomaly_reason=sa.case((Order.anomaly_reason == "refund_failed", None),
                                       else_=Order.anomaly_reason))
        .execution_options(synchronize_session=False))
    db.session.commit()
    if result.rowcount == 1:
        event(log, logging.INFO, "refunded", order=order_number, actor=actor, total_fee=order.total_fee)
    return "refunded"


# -- inside -------------------------------------------------------------------------------

def _ask_status(order, actor):
    """The operator's status query for the order, its audit row committed."""
    answer = unitel.UnitelClient(config.current()).status(order.order_number)
    audit.record_answer(order, "status", answer)
    db.session.commit()
    event(log, logging.INFO, "status_query", order=order.order_number, actor=actor,
          outcome=answer.outcome, code=answer.code)
    return answer


def _submit(order, kind, actor):
    return _send(order, audit.record_sending(order, kind), kind, actor)


def _send(order, call_id, kind, actor):
    """Send the submit whose audit row `call_id` is committed, then settle its answer."""
    answer = unitel.UnitelClient(config.current()).submit(
        request_id=order.order_number, msisdn=order.phone_number,
        product_code=order.product_code, recharge_type=order.recharge_type)
    event(log, logging.INFO, "operator_answer", order=order.order_number, kind=kind, actor=actor,
          outcome=answer.outcome, code=answer.code, ms=answer.latency_ms,
          phone=phones.mask(order.phone_number))
    # The answer goes onto the audit row in the settle's own transaction.
    return _settle(order, answer, actor, also=lambda: audit.record_outcome(call_id, answer))


def _to_unknown(order, reason, actor, detail):
    """Leave the order 'unknown' and flagged for a person (or for the next status query)."""
    if order.recharge_status == "processing":
        if not _transition(order, ("processing",), {"recharge_status": "unknown"}):
            _log_lost_claim(order, actor)
            return None
    anomalies.flag(order.order_number, reason, detail)
    db.session.commit()
    event(log, logging.WARNING, "flagged", order=order.order_number, reason=reason, actor=actor)
    return "unknown"


def _clear_auto_reason(*also):
    """The machine's own "answer unclear" flag goes once the answer is clear (a person's
    flag, or one set by payments.py, stays); so do the reasons in `also`."""
    return sa.case((_O.c.anomaly_reason.in_((*AUTO_REASONS, *also)), None), else_=_O.c.anomaly_reason)


def _settle(order, answer, actor, also=None):
    if answer.outcome == unitel.SUCCESS:
        won = _transition(order, ("processing", "unknown"), {
            "recharge_status": "success", "recharged_at": utcnow(),
            "anomaly_reason": _clear_auto_reason()}, also=also)
        _log_settle(order, won, "recharge_success", actor)
        return "success" if won else None
    if answer.outcome == unitel.FAILED:
        won = _transition(order, ("processing", "unknown"), {
            "recharge_status": "failed", "anomaly_reason": _clear_auto_reason()}, also=also)
        _log_settle(order, won, "recharge_failed", actor, code=answer.code, reason=answer.message)
        if won:
            refund(order.order_number, actor)
        return "failed" if won else None
    # Timeout, dropped connection, 5xx, a code we do not know: maybe done, maybe not.
    won = _transition(order, ("processing",), {"recharge_status": "unknown"}, also=also)
    if won:
        anomalies.flag(order.order_number, "recharge_unknown",
                       f"{answer.code} {answer.message}".strip()[:500] or "no answer")
        db.session.commit()
    _log_settle(order, won, "recharge_unknown", actor, code=answer.code, sent=answer.sent)
    return "unknown" if won else None


def _log_settle(order, won, key, actor, **fields):
    if won:
        level = logging.INFO if key == "recharge_success" else logging.WARNING
        event(log, level, key, order=order.order_number, actor=actor, **fields)
    else:
        event(log, logging.WARNING, "settle_conflict", order=order.order_number, actor=actor,
              wanted=key, message="another process settled this order first")


def _log_lost_claim(order, actor):
    event(log, logging.INFO, "already_processing", "订单正在被其他进程处理",
          order=order.order_number, actor=actor,
          payment=order.payment_status, recharge=order.recharge_status)


def stuck_cutoff():
    return utcnow() - timedelta(seconds=config.current().SWEEP_STUCK_SECONDS)
