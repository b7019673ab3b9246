"""Refunds: a failed recharge gives the customer the money back, through WeChat."""
import logging

from .. import config, metrics
from ..clients.wechat import WeChatClient, WeChatRejected, WeChatUnavailable
from ..extensions import db
from ..logs import event
from . import anomalies, audit, state

log = logging.getLogger("elife.recharge")  # the runbook greps these lines with the recharge's


def refund(order_number, actor):
    """Refund a `failed` order in full; idempotent (WeChat dedupes on out_refund_no)."""
    order = state.read_fresh(order_number)
    if order is None or not state.refund_due(order):
        return order and order.payment_status
    try:
        WeChatClient(config.current()).refund(order_number=order_number, total_fee=order.total_fee,
                                              reason="top-up failed")
    except (WeChatUnavailable, WeChatRejected) as exc:
        metrics.refund("error")
        audit.record_call(order, "refund", "error", str(exc))
        anomalies.flag(order_number, "refund_failed", f"{type(exc).__name__}: {exc}")
        db.session.commit()
        event(log, logging.ERROR, "refund_failed", order=order_number, actor=actor, error=str(exc))
        return "paid"
    metrics.refund("success")
    audit.record_call(order, "refund", "success", f"refunded {order.total_fee} fen")
    db.session.commit()
    if state.mark_refunded(order_number):
        event(log, logging.INFO, "refunded", order=order_number, actor=actor, total_fee=order.total_fee)
    return "refunded"
