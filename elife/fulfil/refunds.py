"""Refunds: a failed recharge gives the customer the money back, through WeChat.

WeChat accepting a refund request is not a refund: the refund may stay PROCESSING, or
end REFUNDCLOSE or CHANGE (a closed card, a short merchant balance). So an accepted
request makes the order `refunding`, and only WeChat's refund query -- asked at once,
on a refund notice (refund_notices.py), or by the sweep for refunds `refunding` longer
than SWEEP_GRACE_SECONDS -- makes it `refunded`. A refusal, REFUNDCLOSE or CHANGE leave
it `paid`, flagged `refund_failed` with WeChat's words, for a person: /admin asks again
with the same out_refund_no (WeChat refunds one out_refund_no once) or resolves it with
a note. The writes are in state.py.
"""
import logging

from .. import config, metrics
from ..clients.wechat import WeChatClient, WeChatRejected, WeChatUnavailable
from ..extensions import db
from ..logs import event
from ..timeutil import utcnow
from . import anomalies, audit, state

log = logging.getLogger("elife.recharge")  # the runbook greps these lines with the recharge's

# Fields only a refund notice carries (Cloud Hosting, camelCase): a body with any of
# them is a refund notice, wherever it was sent.
REFUND_NOTICE_FIELDS = ("outRefundNo", "refundId", "refundStatus", "settlementRefundFee",
                        "refundRecvAccout", "reqInfo")
QUERY_OUTCOMES = {"SUCCESS": "success", "PROCESSING": "unknown", "REFUNDCLOSE": "failed",
                  "CHANGE": "failed", "NOTFOUND": "not_found"}


def refund_callback_path(order_number):
    return f"/payment/refund-callback/{order_number}"


def is_refund_notice(body):
    return isinstance(body, dict) and any(k in body for k in REFUND_NOTICE_FIELDS)


def refund(order_number, actor):
    """Ask WeChat to refund a `failed` order in full, then ask whether it is done.
    Idempotent: WeChat dedupes on out_refund_no. Returns the payment status it left:
    refunded, refunding (WeChat is on it), or paid (refused, or WeChat not reached)."""
    order = state.read_fresh(order_number)
    if order is None or not state.refund_due(order):
        return order and order.payment_status
    try:
        accepted = WeChatClient(config.current()).refund(
            order_number=order_number, total_fee=order.total_fee, reason="top-up failed",
            callback_path=refund_callback_path(order_number))
    except WeChatUnavailable as exc:
        # Never reached WeChat (or no answer): the sweep sends it again.
        metrics.refund("error")
        audit.record_call(order, "refund", "error", str(exc))
        anomalies.flag(order_number, "refund_failed", f"WeChat not reached: {exc}")
        db.session.commit()
        event(log, logging.ERROR, "refund_failed", order=order_number, actor=actor, reason="unavailable",
              error=str(exc))
        return "paid"
    except WeChatRejected as exc:
        # WeChat said no: a person decides when to ask again.
        words = f"{exc.code}: {exc}"
        metrics.refund("refused")
        audit.record_call(order, "refund", "failed", words)
        state.note_refund_refused(order_number, utcnow())
        anomalies.flag(order_number, "refund_failed", f"refund refused by WeChat: {words}")
        db.session.commit()
        event(log, logging.ERROR, "refund_failed", order=order_number, actor=actor, reason="refused",
              code=exc.code, error=str(exc))
        return "paid"
    metrics.refund("accepted")
    audit.record_call(order, "refund", "success",
                      f"accepted: {order.total_fee} fen, refund id {accepted.refund_id or '-'}")
    db.session.commit()
    if state.mark_refunding(order_number, utcnow()):
        event(log, logging.INFO, "refund_accepted", order=order_number, actor=actor, total_fee=order.total_fee)
    return check(order_number, actor)


def check(order_number, actor):
    """Ask WeChat's refund query about the order's refund and settle by its answer.
    Returns the payment status it left."""
    order = state.read_fresh(order_number)
    if order is None or not state.refund_confirmable(order):
        return order and order.payment_status
    try:
        answer = WeChatClient(config.current()).query_refund(order_number)
    except (WeChatUnavailable, WeChatRejected) as exc:
        audit.record_call(order, "refund_query", "error", str(exc))
        db.session.commit()
        event(log, logging.WARNING, "refund_query_failed", order=order_number, actor=actor, error=str(exc))
        return order.payment_status
    return settle(order, answer, actor)


def settle(order, answer, actor):
    """Settle the refund of `order` (as read before the query) by the refund query's
    `answer`. Returns the payment status it left."""
    n = order.order_number
    said = f"{answer.status} {answer.refund_fee if answer.refund_fee is not None else '-'} fen" + (
        f" at {answer.success_time} (China time)" if answer.success_time else "")
    audit.record_call(order, "refund_query", QUERY_OUTCOMES.get(answer.status, "unknown"), said)
    db.session.commit()
    if answer.succeeded:
        if answer.refund_fee is not None and answer.refund_fee != order.total_fee:
            detail = {"expected": order.total_fee, "received": answer.refund_fee, "source": "refund_query"}
            event(log, logging.ERROR, "refund_amount_mismatch", order=n, actor=actor, **detail)
            anomalies.flag(n, "refund_amount_mismatch", detail)
            db.session.commit()
            return order.payment_status
        if state.mark_refunded(n):
            metrics.refund("refunded")
            event(log, logging.INFO, "refunded", order=n, actor=actor, total_fee=order.total_fee)
        return "refunded"
    if answer.failed:
        words = f"refund {answer.status} (WeChat's refund query)"
        if state.refunding(order):
            if not state.mark_refund_failed(n, also=lambda: anomalies.flag(n, "refund_failed", words)):
                return state.read_fresh(n).payment_status  # another process settled it first
        else:  # paid, never recorded as refunding: flag it, and the sweep leaves it to a person
            state.note_refund_refused(n, utcnow())
            anomalies.flag(n, "refund_failed", words)
            db.session.commit()
        metrics.refund("closed")
        event(log, logging.ERROR, "refund_failed", order=n, actor=actor, reason=answer.status)
        return "paid"
    event(log, logging.INFO, "refund_processing", order=n, actor=actor, status=answer.status)
    return order.payment_status
