"""WeChat's refund notice, at its own path (POST /payment/refund-callback/<orderNumber>).

Like the payment notice it carries no signature, so its body is never believed: it is
recorded (payment_notices, with the decision), checked against the order, and then
WeChat's refund query decides (refunds.check). A payment notice sent here changes
nothing: it is recorded, answered, and logged `wrong_callback_path` (as a refund notice
sent to the payment path is, in payments.py).
"""
import json
import logging

from .. import config
from ..clients.wechat import WeChatClient, WeChatRejected, WeChatUnavailable, refund_number
from ..errors import Forbidden, Invalid
from ..extensions import db
from ..logs import event
from ..timeutil import utcnow
from . import refunds, state
# The payment notice's recording, shared: one table, one shape of the record.
from .payments import (_DECISION, _NOTICE, NOTICE_BODY_CAP, NOTICE_HEADER_CAP, PLATFORM_HEADERS,
                       NoticeVerdict, _short)

log = logging.getLogger("elife.payments")

PAY_NOTICE_FIELDS = ("returnCode", "resultCode", "totalFee", "transactionId")


def handle_refund_notice(url_order_number, raw_body, headers):
    """Record and decide one refund notice; a NoticeVerdict (its decision is on record
    before the caller answers)."""
    body = raw_body[:NOTICE_BODY_CAP].decode("utf-8", "replace")
    if len(raw_body) > NOTICE_BODY_CAP:
        body += f"...[truncated: {len(raw_body)} bytes in all]"
    notice_id = db.session.connection().execute(_NOTICE, {
        "order_number": url_order_number[:64], "received_at": utcnow(), "body": body,
        "headers": json.dumps({h: headers.get(h)[:NOTICE_HEADER_CAP]
                               for h in PLATFORM_HEADERS if headers.get(h)}),
    }).inserted_primary_key[0]
    decision, detail, refused = _decide(url_order_number, raw_body, headers)
    db.session.connection().execute(_DECISION, {"notice": notice_id, "d": decision,
                                                "why": detail and detail[:2000]})
    db.session.commit()
    return NoticeVerdict(decision, refused)


def _decide(n, raw_body, headers):
    shown = _short(n)
    try:
        body = json.loads(raw_body)
    except (ValueError, RecursionError):
        event(log, logging.WARNING, "notice_malformed", order=shown, path="refund")
        return "malformed", None, Invalid("malformed_json", "the body is not valid JSON")
    if not isinstance(body, dict):
        event(log, logging.WARNING, "notice_not_wechat", order=shown, path="refund")
        return "not_a_notice", None, Invalid("not_a_notice", "this is not a WeChat Pay refund notice")
    if not refunds.is_refund_notice(body):
        if any(k in body for k in PAY_NOTICE_FIELDS):
            event(log, logging.WARNING, "wrong_callback_path", order=shown, path="refund",
                  received="payment notice", message="a payment notice on the refund path changes nothing")
            return "wrong_callback_path", None, None
        event(log, logging.WARNING, "notice_not_wechat", order=shown, path="refund")
        return "not_a_notice", None, Invalid("not_a_notice", "this is not a WeChat Pay refund notice")
    if config.current().REQUIRE_WX_SOURCE and not headers.get("X-WX-SOURCE"):
        event(log, logging.WARNING, "notice_not_from_platform", order=shown, path="refund")
        return "not_from_platform", None, Forbidden(
            "not_from_platform", "callbacks are accepted only through WeChat Cloud Hosting")

    order = state.read_fresh(n)
    if order is None:
        event(log, logging.WARNING, "notice_unknown_order", order=shown, path="refund")
        return "unknown_order", None, None
    wrong = {k: _short(body.get(k)) for k, want in (("outTradeNo", n), ("outRefundNo", refund_number(n)))
             if body.get(k) != want}
    if wrong:
        event(log, logging.WARNING, "refund_notice_mismatch", order=n, **wrong)
        return "rejected", json.dumps(wrong), None
    claimed = _short(body.get("refundStatus"))
    if order.payment_status == "refunded":
        event(log, logging.INFO, "duplicate_refund_notice", order=n, claimed=claimed)
        return "duplicate", None, None
    if not state.refund_confirmable(order):
        event(log, logging.WARNING, "refund_notice_unexpected", order=n, payment=order.payment_status,
              recharge=order.recharge_status, claimed=claimed)
        return "not_refunding", None, None
    try:
        answer = WeChatClient(config.current()).query_refund(n)
    except (WeChatUnavailable, WeChatRejected) as exc:
        event(log, logging.WARNING, "refund_query_failed", order=n, actor="refund_notice", error=str(exc))
        return "query_failed", str(exc), None
    result = refunds.settle(order, answer, "refund_notice")
    if result == "refunded":
        return "refund_confirmed", None, None
    if result == "paid" and answer.failed:
        return "refund_failed", answer.status, None
    event(log, logging.WARNING, "refund_unconfirmed", order=n, claimed=claimed, query=answer.status,
          message="the refund query does not confirm the notice: nothing changes")
    return "refund_unconfirmed", f"notice said {claimed}; the refund query says {answer.status}", None
