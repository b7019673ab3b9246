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

from .. import database, metrics
from ..clients import unitel
from ..extensions import db
from ..logs import event
from ..shop import catalog, phones
from ..timeutil import utcnow
from . import audit, breaker, refunds, state
from .state import RechargeStatus

log = logging.getLogger("elife.recharge")


# -- entry points -------------------------------------------------------------------------
# Each takes `svc` (services.Services): the settings and the clients.

def recharge_paid_order(svc, order_number, actor):
    """Claim a paid order and top it up (the sweep).

    Returns the status this call settled it in, or None when it did not claim it."""
    return submit_claimed(svc, claim_paid_order(svc, order_number, actor), actor)


def claim_paid_order(svc, order_number, actor):
    """The claim in its own committed transaction; as claim_in_transaction returns it."""
    marker = new_claim_marker()

    def unit():
        order = state.read(order_number)
        if order is None:
            event(log, logging.ERROR, "order_missing", order=order_number, actor=actor)
            return None
        claim = claim_in_transaction(order, actor, marker)
        db.session.commit()
        return claim

    return database.run_unit(svc.settings, unit, "claim")


def new_claim_marker():
    return secrets.token_hex(8)


def claim_in_transaction(order, actor, marker):
    """The claim of `order` (as read in the caller's open transaction): one conditional
    UPDATE (rowcount 1 wins), and the audit row of the submit it allows. The caller
    commits -- before anything is sent -- and then calls submit_claimed.

    payments.confirm_paid calls it in the transaction of its paid UPDATE, with the row
    that UPDATE left, so a paid order is claimed in the same commit.

    The caller's unit is retried (database.run_unit) when the connection drops, also
    after a COMMIT the server did apply. `marker` goes onto the audit row; a claim that
    finds nothing to claim looks for it, and finding it means the claim is ours,
    committed by an attempt whose acknowledgement was lost.

    Returns (order, audit row id), or None when this process did not win (logged:
    already_processing)."""
    if state.claimable(order):
        claimed = state.claim(order)
        if claimed is not None:
            return claimed, audit.insert_sending(claimed, "submit", marker)
        order = state.read(order.order_number)
    mine = our_claim(order.order_number, marker)
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


def submit_claimed(svc, claim, actor):
    """After the claim is committed: the one submit, and its settle."""
    if claim is None:
        return None
    order, call_id = claim
    event(log, logging.INFO, "claim_won", order=order.order_number, actor=actor, version=order.version)
    return _send(svc, order, call_id, "submit", actor)


def reconcile(svc, order_number, actor, force=False):
    """Settle an `unknown` (or stuck `processing`) order through the operator's status query.

    `force` lets a person ask before SWEEP_STUCK_SECONDS for a look; it never allows an
    early resubmit.
    """
    s = svc.settings
    order = state.read_fresh(order_number)
    if order is None or not state.awaiting_operator(order):
        return order and order.recharge_status
    age = (utcnow() - order.recharge_at).total_seconds() if order.recharge_at else 0
    stuck = age >= s.SWEEP_STUCK_SECONDS
    processing = state.processing(order)
    if processing and not (stuck or force):
        event(log, logging.INFO, "still_processing", order=order_number, actor=actor, age=int(age))
        return RechargeStatus.PROCESSING
    if not svc.unitel.has_status_query:
        # Nothing to ask: a claim whose worker died mid-submit goes to a person; an
        # unknown order is already with one.
        if processing and stuck:
            return _to_unknown(svc, order, state.CONFIRM, actor,
                               f"claimed {int(age)} s ago and no answer recorded (the process stopped "
                               f"mid-submit?). {CONFIRM_ADVICE}")
        return order.recharge_status

    answer = _ask_status(svc, order, actor)
    if answer.outcome in (unitel.SUCCESS, unitel.FAILED):
        return _settle(svc, order, answer, actor)
    if answer.outcome != unitel.NOT_FOUND:
        # Pending at the operator, or no clear answer: ask again later. A claim this old
        # that is still 'processing' (its worker died) becomes 'unknown', flagged.
        if processing and stuck:
            return _to_unknown(svc, order, "recharge_unknown", actor,
                               f"stuck processing; status query: {answer.outcome} {answer.code}".strip())
        return order.recharge_status
    if not stuck:
        event(log, logging.INFO, "not_found_too_soon", order=order_number, actor=actor, age=int(age))
        return order.recharge_status
    if order.submit_count >= state.MAX_SUBMITS:
        # Only a person can decide now; the sweep leaves 'unknown' orders at this count alone,
        # so this flag (and its ERROR line) is written once.
        event(log, logging.ERROR, "operator_lost_request", order=order_number, submits=order.submit_count)
        return _to_unknown(svc, order, state.LOST, actor,
                           f"the operator has no record of {order.submit_count} submits; a person must decide")
    # The one second submit: same request id, only after the operator said it never arrived.
    again = state.resubmit(s, order)
    if again is None:
        _log_lost_claim(order, actor)
        return None
    event(log, logging.WARNING, "resubmit", order=order_number, actor=actor,
          message="operator has no record of the first submit")
    return _submit(svc, again, "resubmit", actor)


def give_up(svc, order_number, actor):
    """A person's decision on an order the operator lost every allowed submit of
    (operator_lost_request): ask the operator once more, settle by its answer if it now
    knows the request, and if it still has no record, mark the recharge failed and
    refund the customer. Nothing is ever sent again.

    Returns the recharge status it ended in, or None when the order is not such an
    order (or another process settled it first)."""
    order = state.read_fresh(order_number)
    if order is None or not state.lost_by_operator(order):
        return None
    answer = _ask_status(svc, order, actor)
    if answer.outcome in (unitel.SUCCESS, unitel.FAILED):
        return _settle(svc, order, answer, actor)
    if answer.outcome != unitel.NOT_FOUND:
        return RechargeStatus.UNKNOWN  # pending or unclear: the person asks again later
    if state.give_up(svc.settings, order) is None:
        _log_lost_claim(order, actor)
        return None
    event(log, logging.WARNING, "given_up", order=order_number, actor=actor, submits=order.submit_count,
          message="the operator has no record of any submit; recharge failed, refunding")
    refunds.refund(svc, order_number, actor)
    return RechargeStatus.FAILED


def confirm_delivered(svc, order_number, actor):
    """A person's decision, after asking Unitel, that an unclear top-up was done (there
    being no status query to ask). Nothing is sent. Returns "success", or None when the
    order is not awaiting confirmation (or another process settled it first)."""
    order = state.read_fresh(order_number)
    if order is None or not state.awaiting_confirmation(order):
        return None
    if state.mark_delivered(svc.settings, order) is None:
        _log_lost_claim(order, actor)
        return None
    event(log, logging.WARNING, "confirmed_delivered", order=order_number, actor=actor,
          phone=phones.mask(order.phone_number), message="a person confirmed it with the operator")
    return RechargeStatus.SUCCESS


def confirm_failed(svc, order_number, actor):
    """A person's decision, after asking Unitel, that an unclear top-up was not done: the
    recharge is failed and the customer refunded. Nothing is sent to the operator.
    Returns the payment status it ended in ("refunded", or "paid" when WeChat's refund
    failed and was flagged), or None when the order is not awaiting confirmation."""
    order = state.read_fresh(order_number)
    if order is None or not state.awaiting_confirmation(order):
        return None
    if state.mark_failed(svc.settings, order) is None:
        _log_lost_claim(order, actor)
        return None
    event(log, logging.WARNING, "confirmed_failed", order=order_number, actor=actor,
          phone=phones.mask(order.phone_number), message="a person confirmed it with the operator; refunding")
    return refunds.refund(svc, order_number, actor)


# -- inside -------------------------------------------------------------------------------

CONFIRM_ADVICE = ("No status query (UNITEL_STATUS_PATH=none): confirm with Unitel, then mark "
                  "delivered or fail and refund.")


def _ask_status(svc, order, actor):
    """The operator's status query for the order, its audit row committed."""
    db.session.close()  # no connection held while the operator takes its time
    answer = svc.unitel.status(order.order_number)
    metrics.operator_request("status", answer)
    audit.record_answer(order, "status", answer)
    db.session.commit()
    breaker.record(svc.settings, answer, order.product_operator)
    event(log, logging.INFO, "status_query", order=order.order_number, actor=actor,
          outcome=answer.outcome, code=answer.code)
    return answer


def _submit(svc, order, kind, actor):
    return _send(svc, order, audit.record_sending(order, kind), kind, actor)


def _send(svc, order, call_id, kind, actor):
    """Send the submit whose audit row `call_id` is committed, then settle its answer:
    our order number as the journal id, the operator's code and the MNT price the order
    was created with."""
    operator_code = order.operator_code or _operator_code(order)
    # The operator may take UNITEL_READ_TIMEOUT (30 s): hold no database connection
    # meanwhile, or a few slow answers would empty the pool for everyone.
    db.session.close()
    answer = svc.unitel.submit(
        journal_id=order.order_number, msisdn=order.phone_number, recharge_type=order.recharge_type,
        operator_code=operator_code, amount_mnt=order.product_price_tg, vat_register_no=order.vat_register_no)
    metrics.operator_request(kind, answer)
    event(log, logging.INFO, "operator_answer", order=order.order_number, kind=kind, actor=actor,
          outcome=answer.outcome, code=answer.code, ms=answer.latency_ms,
          phone=phones.mask(order.phone_number))
    breaker.record(svc.settings, answer, order.product_operator)
    # The answer goes onto the audit row in the settle's own transaction.
    return _settle(svc, order, answer, actor, also=lambda: audit.record_outcome(call_id, answer))


def _operator_code(order):
    """For an order made before orders recorded the operator's code: its product's."""
    code = catalog.operator_code_of(order.product_operator, order.recharge_type, order.product_code)
    db.session.commit()
    return code


def _to_unknown(svc, order, reason, actor, detail):
    """Leave the order 'unknown' and flagged for a person (or for the next status query)."""
    if state.processing(order):
        if state.mark_unknown(svc.settings, order, reason, detail) is None:
            _log_lost_claim(order, actor)
            return None
    else:
        state.flag(order.order_number, reason, detail)
    event(log, logging.WARNING, "flagged", order=order.order_number, reason=reason, actor=actor)
    return RechargeStatus.UNKNOWN


def _settle(svc, order, answer, actor, also=None):
    s = svc.settings
    if answer.outcome == unitel.SUCCESS:
        done = state.settle_success(s, order, answer.receipt, also=also)
        if done is not None:
            metrics.recharged(done.paid_at, done.recharged_at)
        _log_settle(order, done, "recharge_success", actor, receipt="yes" if answer.receipt else "no")
        return RechargeStatus.SUCCESS if done is not None else None
    if answer.outcome == unitel.FAILED:
        done = state.settle_failed(s, order, also=also)
        _log_settle(order, done, "recharge_failed", actor, code=answer.code, reason=answer.message)
        if done is not None:
            refunds.refund(svc, order.order_number, actor)
        return RechargeStatus.FAILED if done is not None else None
    # Timeout, dropped connection, 5xx, a code we do not know: maybe done, maybe not.
    if svc.unitel.has_status_query:
        reason, detail = "recharge_unknown", f"{answer.code} {answer.message}".strip()[:500] or "no answer"
    else:
        reason, detail = state.CONFIRM, _evidence(order, answer)
    done = state.mark_unknown(s, order, reason, detail, also=also)
    _log_settle(order, done, "recharge_unknown", actor, code=answer.code, sent=answer.sent,
                ms=answer.latency_ms)
    return RechargeStatus.UNKNOWN if done is not None else None


def _evidence(order, answer):
    """What a person needs to ask Unitel about an unclear top-up."""
    said = f"{answer.code} {answer.message}".strip() or "nothing"
    http = f"HTTP {answer.http_status}" if answer.http_status else "no HTTP answer"
    return (f"sent {answer.request or 'a top-up'} msisdn={phones.mask(order.phone_number)}; "
            f"came back: {said} ({http}); after {answer.latency_ms} ms. {CONFIRM_ADVICE}")


def _log_settle(order, done, key, actor, **fields):
    if done is not None:
        level = logging.INFO if key == "recharge_success" else logging.WARNING
        event(log, level, key, order=order.order_number, actor=actor, **fields)
    else:
        event(log, logging.WARNING, "settle_conflict", order=order.order_number, actor=actor,
              wanted=key, message="another process settled this order first")


def _log_lost_claim(order, actor):
    event(log, logging.INFO, "already_processing", "订单正在被其他进程处理",
          order=order.order_number, actor=actor,
          payment=order.payment_status, recharge=order.recharge_status)
