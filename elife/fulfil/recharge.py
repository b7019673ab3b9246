"""The recharge: claim a paid order, submit it to the operator once, settle the answer.

The claim is committed before the operator is called, so at most one process ever
submits an order; a crash after the claim leaves `processing` with `recharge_at` set,
which the sweep settles through the status query. The states, the guards and every
write of them are in state.py; this module decides when each happens.

Without a status query (UNITEL_STATUS_PATH=none, as in production while Unitel has
none we know of) an unclear order is never sent again: it is flagged for a person
(confirm_with_operator) with what we sent, what came back and how long it took, and
the person marks it delivered, or failed and refunded, once Unitel has said which.
"""
import logging
import secrets
from datetime import timedelta

from .. import config, database, metrics
from ..clients import unitel
from ..extensions import db
from ..logs import event
from ..models import Order
from ..shop import catalog, phones
from ..timeutil import utcnow
from . import anomalies, audit, breaker, refunds, state

log = logging.getLogger("elife.recharge")


# -- entry points -------------------------------------------------------------------------

def recharge_paid_order(order_number, actor):
    """Claim a paid order and top it up (the sweep).

    Returns the status this call settled it in, or None when it did not claim it."""
    return submit_claimed(claim_paid_order(order_number, actor), actor)


def claim_paid_order(order_number, actor):
    """The claim in its own committed transaction; as claim_in_transaction returns it."""
    marker = new_claim_marker()

    def unit():
        claim = claim_in_transaction(order_number, actor, marker=marker)
        db.session.commit()
        return claim

    return database.run_unit(config.current(), unit, "claim")


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
    order = known if known is not None else state.read(order_number)
    while order is not None and state.claimable(order):
        if state.claim(order, utcnow()):
            return order, audit.insert_sending(order, "submit", marker)
        if known is None:
            break
        order, known = state.read(order_number), None
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
    return state.read(order_number), call_id


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
    order = state.read_fresh(order_number)
    if order is None or not state.awaiting_operator(order):
        return order and order.recharge_status
    age = (utcnow() - order.recharge_at).total_seconds() if order.recharge_at else 0
    stuck = age >= s.SWEEP_STUCK_SECONDS
    if order.recharge_status == "processing" and not (stuck or force):
        event(log, logging.INFO, "still_processing", order=order_number, actor=actor, age=int(age))
        return "processing"
    if not unitel.has_status_query(s):
        # Nothing to ask: a claim whose worker died mid-submit goes to a person; an
        # unknown order is already with one.
        if order.recharge_status == "processing" and stuck:
            return _to_unknown(order, state.CONFIRM, actor,
                               f"claimed {int(age)} s ago and no answer recorded (the process stopped "
                               f"mid-submit?). {CONFIRM_ADVICE}")
        return order.recharge_status

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
    if order.submit_count >= state.MAX_SUBMITS:
        # Only a person can decide now; the sweep leaves 'unknown' orders at this count alone,
        # so this flag (and its ERROR line) is written once.
        event(log, logging.ERROR, "operator_lost_request", order=order_number, submits=order.submit_count)
        return _to_unknown(order, "operator_lost_request", actor,
                           f"the operator has no record of {order.submit_count} submits; a person must decide")
    # The one second submit: same request id, only after the operator said it never arrived.
    won = state.transition(order, ("unknown", "processing"),
                           {"recharge_status": "processing", "submit_count": Order.submit_count + 1},
                           extra_where=(Order.submit_count == order.submit_count,))
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
    order = state.read_fresh(order_number)
    if order is None or not state.lost_by_operator(order):
        return None
    answer = _ask_status(order, actor)
    if answer.outcome in (unitel.SUCCESS, unitel.FAILED):
        return _settle(order, answer, actor)
    if answer.outcome != unitel.NOT_FOUND:
        return "unknown"  # pending or unclear: the person asks again later
    won = state.transition(order, ("unknown",), {
        "recharge_status": "failed",
        "anomaly_reason": state.clear_auto_reason("operator_lost_request")},
        extra_where=(Order.submit_count == order.submit_count,))
    if not won:
        _log_lost_claim(order, actor)
        return None
    event(log, logging.WARNING, "given_up", order=order_number, actor=actor, submits=order.submit_count,
          message="the operator has no record of any submit; recharge failed, refunding")
    refunds.refund(order_number, actor)
    return "failed"


def confirm_delivered(order_number, actor):
    """A person's decision, after asking Unitel, that an unclear top-up was done (there
    being no status query to ask). Nothing is sent. Returns "success", or None when the
    order is not awaiting confirmation (or another process settled it first)."""
    order = state.read_fresh(order_number)
    if order is None or not state.awaiting_confirmation(order):
        return None
    if not state.mark_delivered(order, utcnow()):
        _log_lost_claim(order, actor)
        return None
    event(log, logging.WARNING, "confirmed_delivered", order=order_number, actor=actor,
          phone=phones.mask(order.phone_number), message="a person confirmed it with the operator")
    return "success"


def confirm_failed(order_number, actor):
    """A person's decision, after asking Unitel, that an unclear top-up was not done: the
    recharge is failed and the customer refunded. Nothing is sent to the operator.
    Returns the payment status it ended in ("refunded", or "paid" when WeChat's refund
    failed and was flagged), or None when the order is not awaiting confirmation."""
    order = state.read_fresh(order_number)
    if order is None or not state.awaiting_confirmation(order):
        return None
    if not state.mark_failed(order):
        _log_lost_claim(order, actor)
        return None
    event(log, logging.WARNING, "confirmed_failed", order=order_number, actor=actor,
          phone=phones.mask(order.phone_number), message="a person confirmed it with the operator; refunding")
    return refunds.refund(order_number, actor)


# -- inside -------------------------------------------------------------------------------

CONFIRM_ADVICE = ("No status query (UNITEL_STATUS_PATH=none): confirm with Unitel, then mark "
                  "delivered or fail and refund.")


def _ask_status(order, actor):
    """The operator's status query for the order, its audit row committed."""
    db.session.close()  # no connection held while the operator takes its time
    answer = unitel.UnitelClient(config.current()).status(order.order_number)
    metrics.operator_request("status", answer)
    audit.record_answer(order, "status", answer)
    db.session.commit()
    breaker.record(answer, order.product_operator)
    event(log, logging.INFO, "status_query", order=order.order_number, actor=actor,
          outcome=answer.outcome, code=answer.code)
    return answer


def _submit(order, kind, actor):
    return _send(order, audit.record_sending(order, kind), kind, actor)


def _send(order, call_id, kind, actor):
    """Send the submit whose audit row `call_id` is committed, then settle its answer:
    our order number as the journal id, the operator's code and the MNT price the order
    was created with."""
    operator_code = order.operator_code or _operator_code(order)
    # The operator may take UNITEL_READ_TIMEOUT (30 s): hold no database connection
    # meanwhile, or a few slow answers would empty the pool for everyone.
    db.session.close()
    answer = unitel.UnitelClient(config.current()).submit(
        journal_id=order.order_number, msisdn=order.phone_number, recharge_type=order.recharge_type,
        operator_code=operator_code, amount_mnt=order.product_price_tg, vat_register_no=order.vat_register_no)
    metrics.operator_request(kind, answer)
    event(log, logging.INFO, "operator_answer", order=order.order_number, kind=kind, actor=actor,
          outcome=answer.outcome, code=answer.code, ms=answer.latency_ms,
          phone=phones.mask(order.phone_number))
    breaker.record(answer, order.product_operator)
    # The answer goes onto the audit row in the settle's own transaction.
    return _settle(order, answer, actor, also=lambda: audit.record_outcome(call_id, answer))


def _operator_code(order):
    """For an order made before orders recorded the operator's code: its product's."""
    code = catalog.operator_code_of(order.product_operator, order.recharge_type, order.product_code)
    db.session.commit()
    return code


def _to_unknown(order, reason, actor, detail):
    """Leave the order 'unknown' and flagged for a person (or for the next status query)."""
    if order.recharge_status == "processing":
        if not state.transition(order, ("processing",), {"recharge_status": "unknown"}):
            _log_lost_claim(order, actor)
            return None
    anomalies.flag(order.order_number, reason, detail)
    db.session.commit()
    event(log, logging.WARNING, "flagged", order=order.order_number, reason=reason, actor=actor)
    return "unknown"


def _settle(order, answer, actor, also=None):
    if answer.outcome == unitel.SUCCESS:
        now = utcnow()
        won = state.transition(order, ("processing", "unknown"), {
            "recharge_status": "success", "recharged_at": now, **_receipt_values(answer.receipt),
            "anomaly_reason": state.clear_auto_reason(state.CONFIRM)}, also=also)
        if won:
            metrics.recharged(order.paid_at, now)
        _log_settle(order, won, "recharge_success", actor, receipt="yes" if answer.receipt else "no")
        return "success" if won else None
    if answer.outcome == unitel.FAILED:
        won = state.transition(order, ("processing", "unknown"), {
            "recharge_status": "failed", "anomaly_reason": state.clear_auto_reason(state.CONFIRM)}, also=also)
        _log_settle(order, won, "recharge_failed", actor, code=answer.code, reason=answer.message)
        if won:
            refunds.refund(order.order_number, actor)
        return "failed" if won else None
    # Timeout, dropped connection, 5xx, a code we do not know: maybe done, maybe not.
    won = state.transition(order, ("processing",), {"recharge_status": "unknown"}, also=also)
    if won:
        if unitel.has_status_query(config.current()):
            anomalies.flag(order.order_number, "recharge_unknown",
                           f"{answer.code} {answer.message}".strip()[:500] or "no answer")
        else:
            anomalies.flag(order.order_number, state.CONFIRM, _evidence(order, answer))
        db.session.commit()
    _log_settle(order, won, "recharge_unknown", actor, code=answer.code, sent=answer.sent,
                ms=answer.latency_ms)
    return "unknown" if won else None


def _receipt_values(receipt):
    if receipt is None:
        return {}
    return {"receipt_bill_id": receipt.bill_id or None, "receipt_lottery": receipt.lottery or None,
            "receipt_qr_data": receipt.qr_data or None, "receipt_amount": receipt.amount or None,
            "receipt_vat": receipt.vat or None}


def _evidence(order, answer):
    """What a person needs to ask Unitel about an unclear top-up."""
    said = f"{answer.code} {answer.message}".strip() or "nothing"
    http = f"HTTP {answer.http_status}" if answer.http_status else "no HTTP answer"
    return (f"sent {answer.request or 'a top-up'} msisdn={phones.mask(order.phone_number)}; "
            f"came back: {said} ({http}); after {answer.latency_ms} ms. {CONFIRM_ADVICE}")


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
