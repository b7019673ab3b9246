"""The compensation sweep, run every minute by system cron (scripts/sweep).

It finds orders the normal path left behind and hands each to the same code the
callback uses -- recharge.py for recharges, payments.confirm_paid for payments -- so
it never decides anything on its own. Each kind of work is walked by keyset pages
(never OFFSET: rows that leave the result set while we page would make OFFSET skip
others):

  1. paid, pending, unclaimed, paid longer ago than SWEEP_GRACE_SECONDS -> recharge
  2. unpaid with a payment created in the last SWEEP_UNPAID_WINDOW_SECONDS and older
     than SWEEP_GRACE_SECONDS -> WeChat's order query (a lost callback)
  3. failed but still paid, the refund never answered by WeChat         -> refund again
  4. refunding (WeChat accepted the refund) longer than SWEEP_GRACE_SECONDS -> refund query
  5. unpaid past ORDER_TTL_SECONDS                                        -> closed at WeChat
     (or, if WeChat says the customer paid after all, recovered as paid)
  6. unknown or processing, claimed longer ago than SWEEP_STUCK_SECONDS -> status query

While the operator breaker is open nothing is claimed or asked of the operator: paid
orders wait (never refunded for an outage) until it half-opens.

Then, with what is left of SWEEP_MAX_SECONDS, the subscribe messages still due
(notify/outbox.py: pending, a retry whose wait is over, or left sending by a worker that
died), each claimed by its own conditional UPDATE.

Without a status query (UNITEL_STATUS_PATH=none) there is nothing to ask: a stuck
`processing` is flagged for a person, `unknown` orders are left to one, and the summary
counts them (unconfirmed=N) so that they are not forgotten.

Paid money comes first, so a slow status endpoint during an operator outage cannot use
up the run's SWEEP_MAX_SECONDS before refunds and lost callbacks are seen to.

The keyset is the index order of each selection: id for the first (its index has three
equalities before id), (recharge_at, id), (payment_created_at, id) or
(refund_requested_at, id) for the others.

Several sweeps may run at once (hosts, an operator by hand): every row is claimed by the
conditional UPDATE in recharge.py, so two sweeps never submit the same order. On
MariaDB/MySQL the page is read with FOR UPDATE SKIP LOCKED so a sweep does not wait
behind a row another process is claiming this instant.
"""
import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import timedelta

import sqlalchemy as sa

from .. import metrics
from ..clients.wechat import WeChatRejected, WeChatUnavailable
from ..extensions import db
from ..logs import event
from ..models import AdminSession, IdempotencyKey, Order, PaymentNotice
from ..notify import outbox
from .. import limits
from ..shop import live_prices
from ..shop.orders import IDEMPOTENCY_TTL
from ..timeutil import utcnow
from . import breaker, payments, recharge, refunds, state
from .state import PaymentStatus, RechargeStatus

log = logging.getLogger("elife.sweep")


@dataclass
class Summary:
    found: int = 0
    claimed: int = 0
    settled: int = 0
    flagged: int = 0
    skipped: int = 0
    errors: int = 0
    unconfirmed: int = 0  # paid, unclear, no status query: waiting for a person
    seconds: float = 0.0
    stopped_early: bool = False
    by_selection: dict = field(default_factory=dict)
    messages: dict = field(default_factory=dict)  # subscribe messages: outcome -> count

    def line(self):
        said = ",".join(f"{k}:{v}" for k, v in sorted(self.messages.items()))
        return (f"sweep: found={self.found} claimed={self.claimed} settled={self.settled} "
                f"flagged={self.flagged} skipped={self.skipped} errors={self.errors} "
                f"unconfirmed={self.unconfirmed} seconds={self.seconds:.2f}" + (" stopped_early=1" if self.stopped_early else "")
                + (f" messages={said}" if said else ""))

    def as_dict(self):
        return asdict(self)


# The selections' names (the summary's by_selection, the log's n_<name>). Two are the
# status of the orders they select.
PAID_UNCLAIMED, LOST_CALLBACK, REFUND_PENDING = "paid_unclaimed", "lost_callback", "refund_pending"
REFUNDING, EXPIRED_UNPAID = PaymentStatus.REFUNDING.value, "expired_unpaid"
UNKNOWN, STUCK_PROCESSING = RechargeStatus.UNKNOWN.value, "stuck_processing"


def selections(now, s, has_status_query=True):
    """(name, WHERE, keyset column) for each selection. Each is walked in the order of
    the index that serves it -- (keyset column, id) -- so a page never sorts or scans."""
    grace = now - timedelta(seconds=s.SWEEP_GRACE_SECONDS)
    stuck = now - timedelta(seconds=s.SWEEP_STUCK_SECONDS)
    window = now - timedelta(seconds=s.SWEEP_UNPAID_WINDOW_SECONDS)
    ttl = now - timedelta(seconds=s.ORDER_TTL_SECONDS)
    out = [
        # Paid money first: nothing sent yet, or not even marked paid.
        # idx_payment_recharge_at (payment_status, recharge_status, recharge_at, id)
        (PAID_UNCLAIMED, sa.and_(state.claimable(Order), Order.paid_at < grace), None),
        # idx_orders_payment_created (payment_status, payment_created_at, id)
        (LOST_CALLBACK, state.payment_created_between(Order, window, grace), Order.payment_created_at),
        # idx_payment_recharge_at. A refund WeChat refused or closed waits for a person.
        (REFUND_PENDING, state.auto_refund_due(Order), Order.recharge_at),
        # idx_orders_refunding (payment_status, refund_requested_at, id)
        (REFUNDING, sa.and_(state.refunding(Order), Order.refund_requested_at < grace),
         Order.refund_requested_at),
        # idx_orders_payment_status_created (payment_status, created_at, id)
        (EXPIRED_UNPAID, state.expired(Order, ttl), Order.created_at),
        # Then the unclear ones, once SWEEP_STUCK_SECONDS have passed since the claim;
        # an order the operator lost twice (flagged, or already seen by a person) waits
        # for a person, not for the sweep. After a resubmit that was unclear, keep asking.
        # idx_recharge_status_at_seqid (recharge_status, recharge_at, id)
        (UNKNOWN, state.status_query_due(Order, stuck), Order.recharge_at),
        (STUCK_PROCESSING, state.stuck(Order, stuck), Order.recharge_at),
    ]
    if not has_status_query:  # no one to ask about `unknown`: a person decides
        out = [sel for sel in out if sel[0] != UNKNOWN]
    return out


def _page(where, key_col, after, batch):
    """One keyset page after `after` = (key value, id); rows are (id, number, key value)."""
    key = key_col if key_col is not None else sa.literal(None)
    q = sa.select(Order.id, Order.order_number, key).where(where)
    if after is not None:
        last_key, last_id = after
        if key_col is None:
            q = q.where(Order.id > last_id)
        else:
            q = q.where(sa.or_(key_col > last_key, sa.and_(key_col == last_key, Order.id > last_id)))
    q = q.order_by(*([key_col] if key_col is not None else []), Order.id).limit(batch)
    if db.engine.dialect.name == "mysql":
        q = q.with_for_update(skip_locked=True)
    rows = db.session.execute(q).all()
    db.session.commit()  # release the page's locks at once; the claim is what decides
    return rows


def run(svc):
    """One sweep over every selection, within SWEEP_MAX_SECONDS; its Summary."""
    s = svc.settings
    asks = svc.unitel.has_status_query
    started = time.monotonic()
    deadline = started + s.SWEEP_MAX_SECONDS
    now = utcnow()
    summary = Summary()
    calls_before = metrics.operator_counts()
    for name, where, key_col in selections(now, s, asks):
        counts = summary.by_selection.setdefault(name, 0)
        after = None
        while True:
            if time.monotonic() >= deadline:
                summary.stopped_early = True
                break
            rows = _page(where, key_col, after, s.SWEEP_BATCH)
            if not rows:
                break
            for order_id, number, key_value in rows:
                after = (key_value, order_id)
                if time.monotonic() >= deadline:
                    summary.stopped_early = True
                    break
                summary.found += 1
                counts += 1
                _handle(svc, name, number, summary)
            if summary.stopped_early:
                break
        summary.by_selection[name] = counts
        if summary.stopped_early:
            break
    if not asks:
        summary.unconfirmed, oldest = state.count_awaiting_confirmation()
        if summary.unconfirmed:
            event(log, logging.WARNING, "awaiting_confirmation", count=summary.unconfirmed,
                  oldest=oldest and oldest.isoformat(timespec="seconds"),
                  message="unclear top-ups without a status query: confirm with Unitel on /admin")
    if not summary.stopped_early:
        summary.messages = _send_messages(svc, deadline - time.monotonic())
    _housekeeping(s, now)
    summary.seconds = time.monotonic() - started
    event(log, logging.INFO, "sweep_summary", summary.line()[len("sweep: "):],
          **{f"n_{k}": v for k, v in summary.by_selection.items()})
    _publish(s, summary, calls_before)
    return summary


def _publish(s, summary, calls_before):
    """The run's summary where GET /metrics reads it (the sweep is not a gunicorn worker)."""
    try:
        calls = {k: n - calls_before.get(k, 0) for k, n in metrics.operator_counts().items()}
        metrics.write_sweep_summary(s.METRICS_DIR, summary, calls)
    except Exception as exc:  # noqa: BLE001 -- the sweep's work is done; say so and go on
        event(log, logging.WARNING, "sweep_summary_not_written", error=type(exc).__name__,
              dir=s.METRICS_DIR)


def _send_messages(svc, seconds):
    """The outbox's due messages, within `seconds`; {outcome: count}."""
    if seconds <= 0:
        return {}
    try:
        return outbox.sweep(svc, max_seconds=seconds).outcomes
    except Exception:  # noqa: BLE001 -- a message never fails the sweep's money work
        db.session.rollback()
        log.exception("event=sweep_messages_error")
        return {"error": 1}


OPERATOR_WORK = (PAID_UNCLAIMED, UNKNOWN, STUCK_PROCESSING)


def _handle(svc, selection, number, summary):
    try:
        if selection in OPERATOR_WORK and not breaker.allows_submit(svc.settings):
            summary.skipped += 1  # the operator is down: paid orders wait for it
            return
        if selection == PAID_UNCLAIMED:
            result = recharge.recharge_paid_order(svc, number, "sweep")
            _count(summary, result, claimed=result is not None)
        elif selection in (UNKNOWN, STUCK_PROCESSING):
            before = _submits(number)
            result = recharge.reconcile(svc, number, "sweep")
            _count(summary, result, claimed=_submits(number) > before)
        elif selection == REFUND_PENDING:
            result = refunds.refund(svc, number, "sweep")
            _count(summary, SETTLED if result == PaymentStatus.REFUNDED else
                   SKIPPED if result == PaymentStatus.REFUNDING else FLAGGED)
        elif selection == REFUNDING:
            result = refunds.check(svc, number, "sweep")
            _count(summary, SETTLED if result == PaymentStatus.REFUNDED else
                   FLAGGED if result == PaymentStatus.PAID else SKIPPED)
        elif selection == EXPIRED_UNPAID:
            _close_expired(svc, number, summary)
        else:
            _recover_lost_callback(svc, number, summary)
    except Exception:  # noqa: BLE001 -- one bad row must not stop the sweep
        db.session.rollback()
        summary.errors += 1
        log.exception("event=sweep_row_error order=%s selection=%s", number, selection)


SETTLED, FLAGGED, SKIPPED = "settled", "flagged", "skipped"
# What a recharge's or a refund's result counts as when it is a status.
_FINAL = (RechargeStatus.SUCCESS, RechargeStatus.FAILED, PaymentStatus.REFUNDED, PaymentStatus.PAID)


def _count(summary, result, claimed=False):
    """settled: reached a final state now; flagged: left unclear after our own submit (or
    for a person); skipped: nothing to do yet, or another process had it."""
    if claimed:
        summary.claimed += 1
    if result == SETTLED or result in _FINAL:
        summary.settled += 1
    elif result == FLAGGED or (result == RechargeStatus.UNKNOWN and claimed):
        summary.flagged += 1
    else:
        summary.skipped += 1


def _submits(number):
    n = db.session.execute(sa.select(Order.submit_count).where(Order.order_number == number)).scalar()
    db.session.commit()
    return n or 0


def _recover_lost_callback(svc, number, summary):
    order = state.read_fresh(number)
    if order is None or not state.unpaid(order):
        summary.skipped += 1
        return
    try:
        trade = svc.pay.query_order(number)
    except (WeChatUnavailable, WeChatRejected) as exc:
        event(log, logging.WARNING, "order_query_failed", order=number, actor="sweep", error=str(exc))
        summary.skipped += 1
        return
    if not trade.paid:
        summary.skipped += 1
        return
    event(log, logging.WARNING, "lost_callback", "支付回调丢失，已通过订单查询补单", order=number)
    decision = payments.confirm_paid(svc, order, trade, None, "sweep")
    if decision == "paid":
        summary.claimed += 1
        summary.settled += 1
    elif decision == "rejected":
        summary.flagged += 1
    else:
        summary.skipped += 1


def _close_expired(svc, number, summary):
    """Close an unpaid order past ORDER_TTL_SECONDS at WeChat, then here. Money WeChat
    took is always delivered or refunded: if it says the trade is paid (ORDERPAID), the
    order is recovered as paid instead."""
    cutoff = utcnow() - timedelta(seconds=svc.settings.ORDER_TTL_SECONDS)
    order = state.read_fresh(number)
    if order is None or not state.expired(order, cutoff):
        summary.skipped += 1
        return
    # Asked even when we never noted a payment: a /payment/create racing this close may
    # have made the trade at WeChat a moment ago. A trade WeChat never had is closed.
    try:
        svc.pay.close_order(number)
    except WeChatRejected as exc:
        if exc.code != "ORDERPAID":
            event(log, logging.WARNING, "close_order_refused", order=number, code=exc.code, error=str(exc))
            summary.skipped += 1
            return
        event(log, logging.WARNING, "paid_at_close", order=number,
              message="WeChat says the expired order was paid: recovering it as paid")
        _recover_lost_callback(svc, number, summary)
        return
    except WeChatUnavailable as exc:
        event(log, logging.WARNING, "close_order_failed", order=number, error=str(exc))
        summary.skipped += 1
        return
    if state.close_unpaid(order, cutoff) is not None:
        event(log, logging.INFO, "order_closed", order=number, actor="sweep",
              message="unpaid past ORDER_TTL_SECONDS; closed")
        summary.settled += 1
    else:
        summary.skipped += 1


def _housekeeping(s, now):
    """Drop ended abuse-limit windows, Idempotency-Keys past their 24 hours, stale live
    price lists, admin sessions past their 12 hours, and payment notices past
    NOTICE_RETENTION_DAYS."""
    try:
        limits.purge_expired(now)
        live_prices.purge(s, now)
        db.session.execute(sa.delete(IdempotencyKey).where(
            IdempotencyKey.created_at < now - IDEMPOTENCY_TTL))
        db.session.execute(sa.delete(AdminSession).where(AdminSession.expires_at < now))
        db.session.commit()
        purge_old_notices(s, now)
    except Exception:  # noqa: BLE001 -- housekeeping never fails a sweep
        db.session.rollback()
        log.exception("event=housekeeping_error")


NOTICE_PURGE_BATCH = 1000
NOTICE_PURGE_BATCHES = 10  # per run: 10,000 a minute clears any backlog soon, a little each time


def purge_old_notices(s, now, batch=NOTICE_PURGE_BATCH, batches=NOTICE_PURGE_BATCHES):
    """Delete payment notices older than NOTICE_RETENTION_DAYS, oldest first, in batches of
    their own short transactions; those of an order still flagged for a person stay, as
    the evidence they look at. Returns how many went."""
    cutoff = now - timedelta(days=s.NOTICE_RETENTION_DAYS)
    flagged = sa.exists().where(Order.order_number == PaymentNotice.order_number, state.flagged(Order))
    old = (sa.select(PaymentNotice.id).where(PaymentNotice.received_at < cutoff, ~flagged)
           .order_by(PaymentNotice.received_at).limit(batch))  # idx_payment_notices_received
    gone = 0
    for _ in range(batches):
        ids = db.session.execute(old).scalars().all()
        if ids:
            db.session.execute(sa.delete(PaymentNotice).where(PaymentNotice.id.in_(ids)))
        db.session.commit()
        gone += len(ids)
        if len(ids) < batch:
            break
    if gone:
        event(log, logging.INFO, "notices_purged", count=gone, before=cutoff.date().isoformat())
    return gone
