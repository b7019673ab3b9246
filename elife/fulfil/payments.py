"""Payments: creating the WeChat trade, and believing a payment only when WeChat does.

A Cloud Hosting callback carries no signature, so its body alone never marks an order
paid, nor flags one: it is recorded, checked against the stored order, and then
confirmed with WeChat's order query. Only then is it marked paid (state.mark_paid) and
claimed for the recharge in the same commit; the recharge that follows belongs to
recharge.py. An order is flagged only when the order query confirms a payment that
disagrees with it.
"""
import json
import logging
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa

from .. import config, database, metrics
from ..clients.wechat import WeChatClient, WeChatRejected, WeChatUnavailable
from ..errors import Conflict, DomainError, Forbidden, Invalid, RateLimited, Unavailable
from ..extensions import db
from ..logs import event
from ..models import Order, PaymentNotice
from ..shop import limits
from ..timeutil import utcnow
from . import anomalies, breaker, recharge, refunds, state

log = logging.getLogger("elife.payments")

PLATFORM_HEADERS = ("X-WX-SOURCE", "X-WX-OPENID", "X-WX-APPID", "X-WX-ENV", "X-Forwarded-For", "User-Agent")
# payment_notices.body/headers are TEXT (65,535 bytes on MySQL). A WeChat notice is about
# 1 KB; keep the first 16,000 bytes of anything larger (at most 48,000 once decoded with
# replacement characters) and say so, rather than fail the insert with a 500.
NOTICE_BODY_CAP = 16_000
NOTICE_HEADER_CAP = 512


def callback_path(order_number):
    return f"/payment/callback/{order_number}"


def create_payment(order, openid, client_ip):
    if order.payment_status != "unpaid":
        raise Conflict("order_already_paid", f"this order is already {order.payment_status}")
    if state.expired(order, utcnow() - timedelta(seconds=config.current().ORDER_TTL_SECONDS)):
        raise Conflict("order_expired", "this order is older than its payment window; "
                                        "create a new order")
    breaker.refuse_if_open(order.product_operator)
    try:
        params = WeChatClient(config.current()).unified_order(
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


# -- the callback -------------------------------------------------------------------------

@dataclass(frozen=True)
class NoticeVerdict:
    """What was decided about one notice: api/payment.py answers WeChat from it."""
    decision: str                 # as written to payment_notices.decision
    refused: DomainError = None   # not a notice we take (malformed, not from the platform, too many)

    @property
    def retry_later(self):
        """WeChat must deliver it again: its order query could not be asked."""
        return self.decision == "query_failed"


def handle_callback(url_order_number, raw_body, headers, later=None):
    """Record and decide one notice; a NoticeVerdict.

    WeChat gives a notice 5 s and the operator may take 30: the top-up a notice leads to
    is handed to `later(job)`, which runs it once the answer is sent (api/payment.py);
    without `later` it runs here.

    Anyone can POST here, so what a notice may cost is bounded: one for an order number
    we do not have is counted and logged, not stored; for one of our orders at most
    LIMIT_NOTICES_PER_ORDER_PER_HOUR are stored and decided, the rest refused (429:
    WeChat delivers again later, and the sweep's order query finds a payment in any
    case). A stored notice is committed before anything is asked about it, and its
    decision written before the answer: an answer is never sent for a notice not on record."""
    shown = _short(url_order_number)  # the URL is the caller's: shortened for the log
    # Read once and detached: the checks and confirm_paid read its columns without a
    # commit's expiry sending a SELECT for each look.
    order = state.read_fresh(url_order_number)
    if order is None:
        return _unknown_order(shown, raw_body, headers)
    try:  # concurrent deliveries upsert one counter row: a deadlock is retried, as mark_paid's
        database.run_unit(config.current(), lambda: limits.notices_by_order(order.order_number), "notice_limit")
    except RateLimited as exc:
        event(log, logging.WARNING, "notice_rate_limited", order=order.order_number)
        metrics.callback("rate_limited")
        return NoticeVerdict("rate_limited", exc)

    body = raw_body[:NOTICE_BODY_CAP].decode("utf-8", "replace")
    if len(raw_body) > NOTICE_BODY_CAP:
        body += f"...[truncated: {len(raw_body)} bytes in all]"
    notice_id = db.session.connection().execute(_NOTICE, {
        "order_number": url_order_number[:64], "received_at": utcnow(), "body": body,
        "headers": json.dumps({h: headers.get(h)[:NOTICE_HEADER_CAP]
                               for h in PLATFORM_HEADERS if headers.get(h)}),
    }).inserted_primary_key[0]
    db.session.commit()

    def record(decision, detail=None):  # the notice's decision, in the open transaction
        db.session.connection().execute(_DECISION, {"notice": notice_id, "d": decision,
                                                    "why": detail and detail[:2000]})

    decision, detail, refused = _decide(order, raw_body, headers, record, later or _now)
    if decision != "paid":  # a paid notice's decision was committed with the payment
        record(decision, detail)
        db.session.commit()
    metrics.callback(decision)
    return NoticeVerdict(decision, refused)


_N = PaymentNotice.__table__
_NOTICE = _N.insert()
_DECISION = _N.update().where(_N.c.id == sa.bindparam("notice")).values(
    decision=sa.bindparam("d"), detail=sa.bindparam("why"))


def _now(job):
    job()


def _parse(raw_body, headers):
    """(body, None, None) for a WeChat-shaped notice, else (None, decision, refusal)."""
    try:
        body = json.loads(raw_body)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than Python's stack
        return None, "malformed", Invalid("malformed_json", "the body is not valid JSON")
    if refunds.is_refund_notice(body):  # it has its own path: nothing here believes it
        return None, "wrong_callback_path", None
    if not isinstance(body, dict) or "returnCode" not in body:
        return None, "not_a_notice", Invalid("not_a_notice", "this is not a WeChat Pay notice")
    if config.current().REQUIRE_WX_SOURCE and not headers.get("X-WX-SOURCE"):
        return None, "not_from_platform", Forbidden(
            "not_from_platform", "callbacks are accepted only through WeChat Cloud Hosting")
    return body, None, None


_REFUSAL_EVENTS = {"malformed": "notice_malformed", "not_a_notice": "notice_not_wechat",
                   "not_from_platform": "notice_not_from_platform"}


def _unknown_order(shown, raw_body, headers):
    """No order of ours: nothing to decide, so nothing stored (an anonymous flood fills
    no table). The log keeps what a genuine notice would need to be found again."""
    body, decision, refused = _parse(raw_body, headers)
    seen = database.run_unit(config.current(), lambda: limits.tally("notices-unknown", "all", 3600),
                             "notice_tally")
    said = {k: _short(body[k]) for k in ("outTradeNo", "totalFee", "transactionId") if k in body} if body else {}
    event(log, logging.WARNING, "notice_unknown_order", order=shown, decision=decision or "unknown_order",
          this_hour=seen, **said)
    metrics.callback("unknown_order")
    return NoticeVerdict(decision or "unknown_order", refused)


def _decide(order, raw_body, headers, record, later):
    n = order.order_number
    body, decision, refused = _parse(raw_body, headers)
    if decision == "wrong_callback_path":
        event(log, logging.WARNING, "wrong_callback_path", order=n, path="payment",
              received="refund notice", message="a refund notice on the payment path changes nothing")
        return decision, None, None
    if refused is not None:
        event(log, logging.WARNING, _REFUSAL_EVENTS[decision], order=n)
        return decision, None, refused

    failures = check_notice(order, body)
    if failures:
        # Logged with the seed's phrases, for its runbook's greps. The body is anyone's:
        # it flags nothing by itself (see _mismatching_notice).
        for key, phrase, detail in failures:
            event(log, logging.ERROR, key, phrase, order=n, **detail)
        keys = [k for k, _, _ in failures]
        _mismatching_notice(order, keys)
        return "rejected", json.dumps(keys), None

    if order.payment_status == "closed":
        return _notice_for_closed(order), None, None
    if order.payment_status != "unpaid":
        event(log, logging.INFO, "duplicate_notice", "重复的支付通知", order=n, payment=order.payment_status)
        if order.payment_status == "paid":
            # Claims it if the first delivery died before claiming; otherwise recharge.py
            # logs already_processing / 订单正在被其他进程处理 (the seed's runbook greps it).
            _claim_then_submit(n, "callback", later)
        return "duplicate", None, None

    try:
        trade = WeChatClient(config.current()).query_order(n)
    except (WeChatUnavailable, WeChatRejected) as exc:
        event(log, logging.WARNING, "order_query_failed", "无法向微信确认支付，稍后重试", order=n, error=str(exc))
        return "query_failed", str(exc), None
    return confirm_paid(order, trade, body.get("transactionId"), "callback", record, later), None, None


def _notice_for_closed(order):
    """A notice for an order closed after ORDER_TTL_SECONDS (WeChat closed the trade first,
    so none should come). If WeChat's order query says the customer paid all the same,
    the money must be delivered or refunded by a person: flagged, never recharged here."""
    n = order.order_number
    try:
        trade = WeChatClient(config.current()).query_order(n)
    except (WeChatUnavailable, WeChatRejected) as exc:
        event(log, logging.WARNING, "order_query_failed", order=n, error=str(exc))
        return "query_failed"
    if not trade.paid:
        event(log, logging.WARNING, "payment_unconfirmed", "微信订单查询未确认支付", order=n,
              trade_state=trade.state, payment="closed")
        return "unconfirmed"
    event(log, logging.ERROR, "paid_after_close", order=n, total_fee=trade.total_fee,
          message="WeChat took the money for an order closed after its payment window: deliver or refund it")
    anomalies.flag(n, "paid_after_close", {"transactionId": trade.transaction_id, "totalFee": trade.total_fee})
    db.session.commit()
    return "paid_after_close"


def _mismatching_notice(order, keys):
    """A notice that disagrees with the order is never paid on. It flags the order only
    when WeChat's order query confirms a payment that disagrees too: otherwise anyone
    could flag a victim's unpaid order with one anonymous POST. A payment WeChat
    confirms for the right amount is left to the sweep's order query (lost_callback),
    which pays it as if this notice had never come."""
    n = order.order_number
    if order.payment_status != "unpaid":  # its payment was confirmed already, and agreed
        event(log, logging.WARNING, "notice_disregarded", order=n, payment=order.payment_status,
              checks=",".join(keys))
        return
    try:
        trade = WeChatClient(config.current()).query_order(n)
    except (WeChatUnavailable, WeChatRejected) as exc:  # the sweep asks again
        event(log, logging.WARNING, "order_query_failed", order=n, error=str(exc), checks=",".join(keys))
        return
    if not trade.paid:
        event(log, logging.WARNING, "payment_unconfirmed", "微信订单查询未确认支付", order=n,
              actor="callback", trade_state=trade.state, checks=",".join(keys))
    elif _disagrees(order, trade):
        _flag_disagreement(order, trade, "callback")
    else:
        event(log, logging.WARNING, "notice_disregarded", "the sweep's order query pays it", order=n,
              trade_state=trade.state, checks=",".join(keys))


def _disagrees(order, trade):
    return trade.total_fee != order.total_fee or trade.out_trade_no != order.order_number


def _flag_disagreement(order, trade, actor):
    """WeChat says paid, for another amount (or trade): a person must look."""
    detail = {"expected": order.total_fee, "received": trade.total_fee, "source": "order_query"}
    event(log, logging.ERROR, "amount_mismatch", "支付金额不匹配", order=order.order_number, actor=actor, **detail)
    anomalies.flag(order.order_number, "amount_mismatch", detail)
    db.session.commit()


def check_notice(order, body):
    """Compare a notice with the stored order. Returns [(key, seed phrase, details)]."""
    n = order.order_number
    failures = []
    if body.get("returnCode") != "SUCCESS" or body.get("resultCode") != "SUCCESS":
        failures.append(("payment_not_success", "支付结果不是SUCCESS",
                         {"returnCode": _short(body.get("returnCode")),
                          "resultCode": _short(body.get("resultCode"))}))
    out_trade_no = body.get("outTradeNo")
    if out_trade_no != n:
        failures.append(("out_trade_no_mismatch", "outTradeNo与URL参数不一致",
                         {"expected": n, "received": _short(out_trade_no)}))
    attach_order = _attach_order_number(body.get("attach"))
    if attach_order != n:
        failures.append(("attach_mismatch", "attach中的订单号与URL参数不一致",
                         {"expected": n, "received": _short(attach_order)}))
    fee = body.get("totalFee")
    if not isinstance(fee, int) or isinstance(fee, bool) or fee != order.total_fee:
        failures.append(("amount_mismatch", "支付金额不匹配",
                         {"expected": order.total_fee, "received": _short(fee)}))
    return failures


def confirm_paid(order, trade, transaction_id, actor, record=None, later=None):
    """Mark paid if WeChat's order query says so, then recharge. Shared with the sweep.

    `order` is as read before the query; `record("paid")`, when given, writes in the
    transaction that marks it paid (the callback's notice decision). The submit runs
    through `later` (see handle_callback), or here without it. While the operator's
    breaker is open the order is marked paid but not claimed: the sweep claims it once
    the operator answers again (a paid order is never refunded for an outage)."""
    later = later or _now
    n = order.order_number
    if not trade.paid:
        event(log, logging.WARNING, "payment_unconfirmed", "微信订单查询未确认支付",
              order=n, actor=actor, trade_state=trade.state)
        return "unconfirmed"
    if _disagrees(order, trade):
        _flag_disagreement(order, trade, actor)
        return "rejected"
    marker = recharge.new_claim_marker()

    def mark_paid():
        # Conditional: a repeat after a lost acknowledgement matches nothing. The claim
        # rides in the same transaction (one commit before the operator is called).
        now = utcnow()
        tx = (trade.transaction_id or transaction_id or None) and str(trade.transaction_id or transaction_id)[:64]
        paid = state.mark_paid(n, now, tx)
        if not paid:
            # Already paid. If by this very call (an attempt whose commit went through,
            # its acknowledgement lost), its claim is there under our marker.
            mine = recharge.our_claim(n, marker)
            if mine is not None:
                db.session.commit()
                return True, mine
        claim = None
        if paid:
            # The row as this UPDATE left it (locked until the commit): no need to read it.
            known = Order(**{c.key: getattr(order, c.key) for c in Order.__table__.columns})
            known.payment_status, known.paid_at, known.transaction_id = "paid", now, tx
            known.version += 1
            if breaker.allows_submit():
                claim = recharge.claim_in_transaction(n, actor, known=known, marker=marker)
            else:
                event(log, logging.WARNING, "recharge_deferred", order=n, actor=actor,
                      message="the operator breaker is open; the sweep delivers it")
            if record is not None:
                record("paid")
        db.session.commit()
        return paid, claim

    # Concurrent deliveries can deadlock on the row (InnoDB picks a victim): retry that.
    paid, claim = database.run_unit(config.current(), mark_paid, "mark_paid")
    if not paid:
        event(log, logging.INFO, "duplicate_notice", "重复的支付通知", order=n, actor=actor)
        _claim_then_submit(n, actor, later)  # the winner claims; this logs already_processing
        return "duplicate"
    event(log, logging.INFO, "payment_confirmed", order=n, actor=actor, total_fee=order.total_fee)
    if claim is not None:
        later(lambda: recharge.submit_claimed(claim, actor))
    return "paid"


def _claim_then_submit(n, actor, later):
    """Claim a paid order now (a quick conditional UPDATE); its submit through `later`."""
    if not breaker.allows_submit():
        return
    claim = recharge.claim_paid_order(n, actor)
    if claim is not None:
        later(lambda: recharge.submit_claimed(claim, actor))


def _attach_order_number(attach):
    if not isinstance(attach, str):
        return None
    try:
        data = json.loads(attach)
    except (ValueError, RecursionError):  # as the body: nesting deeper than Python's stack
        return None
    return data.get("orderNumber") if isinstance(data, dict) else None


def _short(value):
    """A received value as it may go into a log line: one line, printable, short."""
    s = repr(value) if not isinstance(value, str) else value
    if not s.isprintable():
        s = s.encode("unicode_escape").decode("ascii")
    return s[:64]
