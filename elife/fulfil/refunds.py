"""Refunds: a failed recharge gives the customer the money back, through WeChat.

WeChat accepting a refund request is not a refund: the refund may stay PROCESSING, or
end REFUNDCLOSE or CHANGE (a closed card, a short merchant balance). So an accepted
request makes the order `refunding`, and only WeChat's refund query -- asked at once,
on a refund notice (notices.py), or by the sweep for refunds `refunding` longer
than SWEEP_GRACE_SECONDS -- makes it `refunded`. A refusal, REFUNDCLOSE or CHANGE leave
it `paid`, flagged `refund_failed` with WeChat's words, for a person: /admin asks again
with the same out_refund_no (WeChat refunds one out_refund_no once) or resolves it with
a note. The writes are in state.py.
"""
import logging

from .. import metrics
from ..clients import unitel
from ..clients.wechat import RefundStatus, WeChatRejected, WeChatUnavailable
from ..extensions import db
from ..logs import event
from ..timeutil import utcnow
from . import audit, state
from .state import PaymentStatus

log = logging.getLogger("elife.recharge")  # the runbook greps these lines with the recharge's

# The refund query's answer as an operator_calls outcome.
QUERY_OUTCOMES = {RefundStatus.SUCCESS: unitel.SUCCESS, RefundStatus.PROCESSING: unitel.UNKNOWN,
                  RefundStatus.REFUNDCLOSE: unitel.FAILED, RefundStatus.CHANGE: unitel.FAILED,
                  RefundStatus.NOTFOUND: unitel.NOT_FOUND}


def refund_callback_path(order_number):
    return f"/payment/refund-callback/{order_number}"


def refund(svc, order_number, actor):
    """Ask WeChat to refund a `failed` order in full, then ask whether it is done.
    Idempotent: WeChat dedupes on out_refund_no. Returns the payment status it left:
    refunded, refunding (WeChat is on it), or paid (refused, or WeChat not reached)."""
    order = state.read_fresh(order_number)
    if order is None or not state.refund_due(order):
        return order and order.payment_status
    try:
        accepted = svc.pay.refund(
            order_number=order_number, total_fee=order.total_fee, reason="top-up failed",
            callback_path=refund_callback_path(order_number))
    except WeChatUnavailable as exc:
        # Never reached WeChat (or no answer): the sweep sends it again.
        metrics.refund("error")
        audit.record_call(order, "refund", "error", str(exc))
        state.flag(order_number, "refund_failed", f"WeChat not reached: {exc}")
        event(log, logging.ERROR, "refund_failed", order=order_number, actor=actor, reason="unavailable",
              error=str(exc))
        return PaymentStatus.PAID
    except WeChatRejected as exc:
        # WeChat said no: a person decides when to ask again.
        words = f"{exc.code}: {exc}"
        metrics.refund("refused")
        audit.record_call(order, "refund", unitel.FAILED, words)
        state.note_refund_refused(order_number, utcnow(), f"refund refused by WeChat: {words}")
        event(log, logging.ERROR, "refund_failed", order=order_number, actor=actor, reason="refused",
              code=exc.code, error=str(exc))
        return PaymentStatus.PAID
    metrics.refund("accepted")
    audit.record_call(order, "refund", unitel.SUCCESS,
                      f"accepted: {order.total_fee} fen, refund id {accepted.refund_id or '-'}")
    db.session.commit()
    if state.start_refund(order) is not None:
        event(log, logging.INFO, "refund_accepted", order=order_number, actor=actor, total_fee=order.total_fee)
    return check(svc, order_number, actor)


def check(svc, order_number, actor):
    """Ask WeChat's refund query about the order's refund and settle by its answer.
    Returns the payment status it left."""
    order = state.read_fresh(order_number)
    if order is None or not state.refund_confirmable(order):
        return order and order.payment_status
    try:
        answer = svc.pay.query_refund(order_number)
    except (WeChatUnavailable, WeChatRejected) as exc:
        audit.record_call(order, "refund_query", "error", str(exc))
        db.session.commit()
        event(log, logging.WARNING, "refund_query_failed", order=order_number, actor=actor, error=str(exc))
        return order.payment_status
    return settle(svc, order, answer, actor)


def settle(svc, order, answer, actor):
    """Settle the refund of `order` (as read before the query) by the refund query's
    `answer`. Returns the payment status it left."""
    n = order.order_number
    said = f"{answer.status} {answer.refund_fee if answer.refund_fee is not None else '-'} fen" + (
        f" at {answer.success_time} (China time)" if answer.success_time else "")
    audit.record_call(order, "refund_query", QUERY_OUTCOMES.get(answer.status, unitel.UNKNOWN), said)
    db.session.commit()
    if answer.succeeded:
        if answer.refund_fee is not None and answer.refund_fee != order.total_fee:
            detail = {"expected": order.total_fee, "received": answer.refund_fee, "source": "refund_query"}
            event(log, logging.ERROR, "refund_amount_mismatch", order=n, actor=actor, **detail)
            state.flag(n, "refund_amount_mismatch", detail)
            return order.payment_status
        if state.confirm_refund(order) is not None:
            metrics.refund("refunded")
            event(log, logging.INFO, "refunded", order=n, actor=actor, total_fee=order.total_fee)
        return PaymentStatus.REFUNDED
    if answer.failed:
        words = f"refund {answer.status} (WeChat's refund query)"
        if state.refunding(order):
            if state.refund_closed(order, words) is None:
                return state.read_fresh(n).payment_status  # another process settled it first
        else:  # paid, never recorded as refunding: flag it, and the sweep leaves it to a person
            state.note_refund_refused(n, utcnow(), words)
        metrics.refund("closed")
        event(log, logging.ERROR, "refund_failed", order=n, actor=actor, reason=answer.status)
        return PaymentStatus.PAID
    event(log, logging.INFO, "refund_processing", order=n, actor=actor, status=answer.status)
    return order.payment_status
