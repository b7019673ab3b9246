"""Payments: creating the WeChat trade, and believing a payment only when WeChat does.

A notice's body alone never marks an order paid, nor flags one (notices.py records and
checks it): WeChat's order query confirms it, and only then is the order marked paid
(state.mark_paid) and claimed for the recharge in the same commit; the recharge that
follows belongs to recharge.py. An order is flagged only when the order query confirms
a payment that disagrees with it.
"""
import logging
from datetime import timedelta

from .. import database
from ..clients.wechat import WeChatRejected, WeChatUnavailable
from ..errors import Conflict, Unavailable
from ..extensions import db
from ..logs import event, short
from ..timeutil import utcnow
from . import breaker, recharge, state

log = logging.getLogger("elife.payments")


def callback_path(order_number):
    return f"/payment/callback/{order_number}"


def create_payment(svc, order, openid, client_ip):
    if not state.unpaid(order):
        raise Conflict("order_already_paid", f"this order is already {order.payment_status}")
    if state.expired(order, utcnow() - timedelta(seconds=svc.settings.ORDER_TTL_SECONDS)):
        raise Conflict("order_expired", "this order is older than its payment window; "
                                        "create a new order")
    breaker.refuse_if_open(svc.settings, order.product_operator)
    try:
        params = svc.pay.unified_order(
            order_number=order.order_number, total_fee=order.total_fee, openid=openid,
            description=f"eLife {order.product_operator} {order.recharge_type} {order.product_price_tg}MNT",
            client_ip=client_ip, callback_path=callback_path(order.order_number))
    except WeChatUnavailable as exc:
        event(log, logging.WARNING, "unified_order_unavailable", order=order.order_number, error=str(exc))
        raise Unavailable("wechat_unavailable", "WeChat Pay could not be reached; try again") from None
    except WeChatRejected as exc:
        if exc.code == "ORDERPAID":
            # Paid at WeChat, its notice not here yet (late, or lost: the sweep's order
            # query recovers it). Not a failure: the customer must not pay again.
            event(log, logging.WARNING, "paid_before_notice", order=order.order_number)
            raise Conflict("order_already_paid", "this order is already paid; "
                                                 "its top-up follows shortly") from None
        event(log, logging.WARNING, "unified_order_rejected", order=order.order_number, error=str(exc))
        raise Unavailable("wechat_rejected", "WeChat Pay refused to create the payment") from None
    state.note_payment_created(order.order_number)
    event(log, logging.INFO, "payment_created", order=order.order_number, total_fee=order.total_fee)
    return params


def check_notice(order, notice):
    """Compare a payment notice with the stored order. Returns [(key, seed phrase, details)]."""
    n = order.order_number
    failures = []
    if not notice.succeeded:
        failures.append(("payment_not_success", "支付结果不是SUCCESS",
                         {"returnCode": short(notice.return_code), "resultCode": short(notice.result_code)}))
    if notice.out_trade_no != n:
        failures.append(("out_trade_no_mismatch", "outTradeNo与URL参数不一致",
                         {"expected": n, "received": short(notice.out_trade_no)}))
    if notice.attach_order_number != n:
        failures.append(("attach_mismatch", "attach中的订单号与URL参数不一致",
                         {"expected": n, "received": short(notice.attach_order_number)}))
    fee = notice.total_fee
    if not isinstance(fee, int) or isinstance(fee, bool) or fee != order.total_fee:
        failures.append(("amount_mismatch", "支付金额不匹配",
                         {"expected": order.total_fee, "received": short(fee)}))
    return failures


def disagrees(order, trade):
    return trade.total_fee != order.total_fee or trade.out_trade_no != order.order_number


def flag_disagreement(order, trade, actor):
    """WeChat says paid, for another amount (or trade): a person must look."""
    detail = {"expected": order.total_fee, "received": trade.total_fee, "source": "order_query"}
    event(log, logging.ERROR, "amount_mismatch", "支付金额不匹配", order=order.order_number, actor=actor, **detail)
    state.flag(order.order_number, "amount_mismatch", detail)


def confirm_paid(svc, order, trade, transaction_id, actor, record=None, later=None):
    """Mark paid if WeChat's order query says so, then recharge. Shared with the sweep and
    the reconciliation.

    `order` is as read before the query; `record("paid")`, when given, writes in the
    transaction that marks it paid (the callback's notice decision). The submit runs
    through `later` (see notices.handle_payment), or here without it. While the operator's
    breaker is open the order is marked paid but not claimed: the sweep claims it once
    the operator answers again (a paid order is never refunded for an outage)."""
    later = later or (lambda job: job())
    n = order.order_number
    if not trade.paid:
        event(log, logging.WARNING, "payment_unconfirmed", "微信订单查询未确认支付",
              order=n, actor=actor, trade_state=trade.state)
        return "unconfirmed"
    if disagrees(order, trade):
        flag_disagreement(order, trade, actor)
        return "rejected"
    marker = recharge.new_claim_marker()
    tx = (trade.transaction_id or transaction_id or None) and str(trade.transaction_id or transaction_id)[:64]

    def mark_paid():
        # Conditional: a repeat after a lost acknowledgement matches nothing. The claim
        # rides in the same transaction (one commit before the operator is called).
        now = utcnow()
        paid = state.mark_paid(order, tx, now)
        if paid is None:
            # Already paid. If by this very call (an attempt whose commit went through,
            # its acknowledgement lost), its claim is there under our marker.
            mine = recharge.our_claim(n, marker)
            db.session.commit()
            return mine is not None, mine
        claim = None
        if breaker.allows_submit(svc.settings):
            claim = recharge.claim_in_transaction(paid, actor, marker)
        else:
            event(log, logging.WARNING, "recharge_deferred", order=n, actor=actor,
                  message="the operator breaker is open; the sweep delivers it")
        if record is not None:
            record("paid")
        db.session.commit()
        return True, claim

    # Concurrent deliveries can deadlock on the row (InnoDB picks a victim): retry that.
    paid, claim = database.run_unit(svc.settings, mark_paid, "mark_paid")
    if not paid:
        event(log, logging.INFO, "duplicate_notice", "重复的支付通知", order=n, actor=actor)
        claim_then_submit(svc, n, actor, later)  # the winner claims; this logs already_processing
        return "duplicate"
    event(log, logging.INFO, "payment_confirmed", order=n, actor=actor, total_fee=order.total_fee)
    if claim is not None:
        later(lambda: recharge.submit_claimed(svc, claim, actor))
    return "paid"


def claim_then_submit(svc, n, actor, later):
    """Claim a paid order now (a quick conditional UPDATE); its submit through `later`."""
    if not breaker.allows_submit(svc.settings):
        return
    claim = recharge.claim_paid_order(svc, n, actor)
    if claim is not None:
        later(lambda: recharge.submit_claimed(svc, claim, actor))
