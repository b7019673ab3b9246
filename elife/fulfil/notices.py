"""WeChat Pay's notices, payment and refund alike: recorded, then decided.

A notice arrives parsed (clients/: a `Notice`), and nothing in it is believed. A payment
notice is checked against the stored order and confirmed with WeChat's order query before
anything is paid (payments.confirm_paid); a refund notice is decided by WeChat's refund
query (refunds.settle). Every notice we store (payment_notices) is committed before
anything is asked about it, and its decision is written before the caller answers: an
answer is never sent for a notice not on record. A notice sent to the other kind's path
is recorded, answered, and changes nothing (`wrong_callback_path`).

Anyone can POST to these paths, so what a payment notice may cost is bounded: one for an
order number we do not have is counted and logged, not stored; for one of our orders at
most LIMIT_NOTICES_PER_ORDER_PER_HOUR are stored and decided, the rest refused (429:
WeChat delivers again later, and the sweep's order query finds a payment in any case).
"""
import json
import logging
from dataclasses import dataclass

import sqlalchemy as sa

from .. import database, limits, metrics
from ..clients.wechat import WeChatRejected, WeChatUnavailable, refund_number
from ..errors import DomainError, Forbidden, Invalid, RateLimited
from ..extensions import db
from ..logs import event, short
from ..models import PaymentNotice
from ..timeutil import utcnow
from . import payments, refunds, state
from .state import PaymentStatus

log = logging.getLogger("elife.payments")


@dataclass(frozen=True)
class Verdict:
    """What was decided about one notice: api/payment.py answers WeChat from it."""
    decision: str                 # as written to payment_notices.decision
    refused: DomainError = None   # not a notice we take (malformed, not from the platform, too many)

    @property
    def retry_later(self):
        """WeChat must deliver it again: its query could not be asked."""
        return self.decision == "query_failed"


_N = PaymentNotice.__table__
_INSERT = _N.insert()
_DECISION = _N.update().where(_N.c.id == sa.bindparam("notice")).values(
    decision=sa.bindparam("d"), detail=sa.bindparam("why"))

_NOT_WECHAT = {"payment": "this is not a WeChat Pay notice", "refund": "this is not a WeChat Pay refund notice"}
_FROM_PLATFORM_ONLY = Forbidden("not_from_platform", "callbacks are accepted only through WeChat Cloud Hosting")


def _record(url_order_number, notice):
    """The notice as it arrived, in the open transaction; its id."""
    return db.session.connection().execute(_INSERT, {
        "order_number": url_order_number[:64], "received_at": utcnow(), "body": notice.text,
        "headers": json.dumps(notice.headers)}).inserted_primary_key[0]


def _decided(notice_id, decision, detail=None):
    """The notice's decision, in the open transaction."""
    db.session.connection().execute(_DECISION, {"notice": notice_id, "d": decision,
                                                "why": detail and detail[:2000]})


def _classify(svc, notice, path):
    """(decision, refusal) for a notice that is not of this path's kind, or not from the
    platform; None for one to decide."""
    if notice.kind == "malformed":
        return "malformed", Invalid("malformed_json", "the body is not valid JSON")
    other = "refund" if path == "payment" else "payment"
    if notice.kind == other or (path == "refund" and notice.kind != "refund" and notice.has_payment_fields):
        return "wrong_callback_path", None
    if notice.kind != path:
        return "not_a_notice", Invalid("not_a_notice", _NOT_WECHAT[path])
    if svc.settings.REQUIRE_WX_SOURCE and not notice.from_platform:
        return "not_from_platform", _FROM_PLATFORM_ONLY
    return None


_REFUSAL_EVENTS = {"malformed": "notice_malformed", "not_a_notice": "notice_not_wechat",
                   "not_from_platform": "notice_not_from_platform"}


def _log_refusal(decision, path, shown):
    if decision == "wrong_callback_path":
        other = "refund" if path == "payment" else "payment"
        event(log, logging.WARNING, "wrong_callback_path", order=shown, path=path, received=f"{other} notice",
              message=f"a {other} notice on the {path} path changes nothing")
    else:
        event(log, logging.WARNING, _REFUSAL_EVENTS[decision], order=shown, **({"path": path} if path == "refund" else {}))


# -- the payment notice ----------------------------------------------------------------------

def handle_payment(svc, url_order_number, notice, later=None):
    """Record and decide one payment notice; a Verdict.

    WeChat gives a notice 5 s and the operator may take 30: the top-up a notice leads to
    is handed to `later(job)`, which runs it once the answer is sent (api/payment.py);
    without `later` it runs here."""
    shown = short(url_order_number)  # the URL is the caller's: shortened for the log
    # Read once and detached: the checks and confirm_paid read its columns without a
    # commit's expiry sending a SELECT for each look.
    order = state.read_fresh(url_order_number)
    if order is None:
        return _unknown_order(svc, shown, notice)
    try:  # concurrent deliveries upsert one counter row: a deadlock is retried, as mark_paid's
        database.run_unit(svc.settings, lambda: limits.notices_by_order(svc.settings, order.order_number), "notice_limit")
    except RateLimited as exc:
        event(log, logging.WARNING, "notice_rate_limited", order=order.order_number)
        metrics.callback("rate_limited")
        return Verdict("rate_limited", exc)

    notice_id = _record(url_order_number, notice)
    db.session.commit()
    decision, detail, refused = _decide_payment(svc, order, notice, notice_id, later or _now)
    if decision != "paid":  # a paid notice's decision was committed with the payment
        _decided(notice_id, decision, detail)
        db.session.commit()
    metrics.callback(decision)
    return Verdict(decision, refused)


def _now(job):
    job()


def _unknown_order(svc, shown, notice):
    """No order of ours: nothing to decide, so nothing stored (an anonymous flood fills
    no table). The log keeps what a genuine notice would need to be found again."""
    decision, refused = _classify(svc, notice, "payment") or ("unknown_order", None)
    seen = database.run_unit(svc.settings, lambda: limits.tally("notices-unknown", "all", 3600), "notice_tally")
    said = {k: short(v) for k, v in (("outTradeNo", notice.out_trade_no), ("totalFee", notice.total_fee),
                                     ("transactionId", notice.transaction_id)) if v is not None}
    event(log, logging.WARNING, "notice_unknown_order", order=shown, decision=decision, this_hour=seen, **said)
    metrics.callback("unknown_order")
    return Verdict(decision, refused)


def _decide_payment(svc, order, notice, notice_id, later):
    n = order.order_number
    refusal = _classify(svc, notice, "payment")
    if refusal is not None:
        _log_refusal(refusal[0], "payment", n)
        return refusal[0], None, refusal[1]

    failures = payments.check_notice(order, notice)
    if failures:
        # Logged with the seed's phrases, for its runbook's greps. The body is anyone's:
        # it flags nothing by itself (see _mismatching_notice).
        for key, phrase, detail in failures:
            event(log, logging.ERROR, key, phrase, order=n, **detail)
        keys = [k for k, _, _ in failures]
        _mismatching_notice(svc, order, keys)
        return "rejected", json.dumps(keys), None

    if state.closed(order):
        return _notice_for_closed(svc, order), None, None
    if not state.unpaid(order):
        event(log, logging.INFO, "duplicate_notice", "重复的支付通知", order=n, payment=order.payment_status)
        if state.paid(order):
            # Claims it if the first delivery died before claiming; otherwise recharge.py
            # logs already_processing / 订单正在被其他进程处理 (the seed's runbook greps it).
            payments.claim_then_submit(svc, n, "callback", later)
        return "duplicate", None, None

    try:
        trade = svc.pay.query_order(n)
    except (WeChatUnavailable, WeChatRejected) as exc:
        event(log, logging.WARNING, "order_query_failed", "无法向微信确认支付，稍后重试", order=n, error=str(exc))
        return "query_failed", str(exc), None
    record = lambda decision: _decided(notice_id, decision)  # noqa: E731 -- in the paid commit
    return payments.confirm_paid(svc, order, trade, notice.transaction_id, "callback", record, later), None, None


def _notice_for_closed(svc, order):
    """A notice for an order closed after ORDER_TTL_SECONDS (WeChat closed the trade first,
    so none should come). If WeChat's order query says the customer paid all the same,
    the money must be delivered or refunded by a person: flagged, never recharged here."""
    n = order.order_number
    try:
        trade = svc.pay.query_order(n)
    except (WeChatUnavailable, WeChatRejected) as exc:
        event(log, logging.WARNING, "order_query_failed", order=n, error=str(exc))
        return "query_failed"
    if not trade.paid:
        event(log, logging.WARNING, "payment_unconfirmed", "微信订单查询未确认支付", order=n,
              trade_state=trade.state, payment=PaymentStatus.CLOSED)
        return "unconfirmed"
    event(log, logging.ERROR, "paid_after_close", order=n, total_fee=trade.total_fee,
          message="WeChat took the money for an order closed after its payment window: deliver or refund it")
    state.flag(n, "paid_after_close", {"transactionId": trade.transaction_id, "totalFee": trade.total_fee})
    return "paid_after_close"


def _mismatching_notice(svc, order, keys):
    """A notice that disagrees with the order is never paid on. It flags the order only
    when WeChat's order query confirms a payment that disagrees too: otherwise anyone
    could flag a victim's unpaid order with one anonymous POST. A payment WeChat
    confirms for the right amount is left to the sweep's order query (lost_callback),
    which pays it as if this notice had never come."""
    n = order.order_number
    if not state.unpaid(order):  # its payment was confirmed already, and agreed
        event(log, logging.WARNING, "notice_disregarded", order=n, payment=order.payment_status,
              checks=",".join(keys))
        return
    try:
        trade = svc.pay.query_order(n)
    except (WeChatUnavailable, WeChatRejected) as exc:  # the sweep asks again
        event(log, logging.WARNING, "order_query_failed", order=n, error=str(exc), checks=",".join(keys))
        return
    if not trade.paid:
        event(log, logging.WARNING, "payment_unconfirmed", "微信订单查询未确认支付", order=n,
              actor="callback", trade_state=trade.state, checks=",".join(keys))
    elif payments.disagrees(order, trade):
        payments.flag_disagreement(order, trade, "callback")
    else:
        event(log, logging.WARNING, "notice_disregarded", "the sweep's order query pays it", order=n,
              trade_state=trade.state, checks=",".join(keys))


# -- the refund notice -----------------------------------------------------------------------

def handle_refund(svc, url_order_number, notice):
    """Record and decide one refund notice; a Verdict (its decision is on record before
    the caller answers)."""
    notice_id = _record(url_order_number, notice)
    decision, detail, refused = _decide_refund(svc, url_order_number, notice)
    _decided(notice_id, decision, detail)
    db.session.commit()
    return Verdict(decision, refused)


def _decide_refund(svc, n, notice):
    shown = short(n)
    refusal = _classify(svc, notice, "refund")
    if refusal is not None:
        _log_refusal(refusal[0], "refund", shown)
        return refusal[0], None, refusal[1]

    order = state.read_fresh(n)
    if order is None:
        event(log, logging.WARNING, "notice_unknown_order", order=shown, path="refund")
        return "unknown_order", None, None
    wrong = {k: short(got) for k, got, want in (("outTradeNo", notice.out_trade_no, n),
                                                ("outRefundNo", notice.out_refund_no, refund_number(n)))
             if got != want}
    if wrong:
        event(log, logging.WARNING, "refund_notice_mismatch", order=n, **wrong)
        return "rejected", json.dumps(wrong), None
    claimed = short(notice.refund_status)
    if state.refunded(order):
        event(log, logging.INFO, "duplicate_refund_notice", order=n, claimed=claimed)
        return "duplicate", None, None
    if not state.refund_confirmable(order):
        event(log, logging.WARNING, "refund_notice_unexpected", order=n, payment=order.payment_status,
              recharge=order.recharge_status, claimed=claimed)
        return "not_refunding", None, None
    try:
        answer = svc.pay.query_refund(n)
    except (WeChatUnavailable, WeChatRejected) as exc:
        event(log, logging.WARNING, "refund_query_failed", order=n, actor="refund_notice", error=str(exc))
        return "query_failed", str(exc), None
    result = refunds.settle(svc, order, answer, "refund_notice")
    if result == PaymentStatus.REFUNDED:
        return "refund_confirmed", None, None
    if result == PaymentStatus.PAID and answer.failed:
        return "refund_failed", answer.status, None
    event(log, logging.WARNING, "refund_unconfirmed", order=n, claimed=claimed, query=answer.status,
          message="the refund query does not confirm the notice: nothing changes")
    return "refund_unconfirmed", f"notice said {claimed}; the refund query says {answer.status}", None
