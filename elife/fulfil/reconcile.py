"""The daily reconciliation: one day of WeChat's bill against our orders
(`flask elife reconcile`, run by cron at 10:30 China time for the day before).

WeChat's bill day is a China-time (UTC+8) day; our times are UTC, so the day is the UTC
window [D 00:00 +08:00, D+1 00:00 +08:00). Every row of the bill is matched with our
order of the same out_trade_no, whenever we recorded it; our side of the day is the
orders paid (paid_at), and refunded (refunded_at), in that window. The differences, by
stable kind:

  paid_at_wechat_only     a SUCCESS trade we hold unpaid, or do not know at all
  paid_here_only          paid here on that day, and WeChat's order query says not paid
  amount_mismatch         the trade's amount is not the order's
  refund_at_wechat_only   a refund WeChat made that we do not hold as refunded
  refund_here_only        refunded here on that day, and WeChat's refund query says not
  refund_amount_mismatch  the refund's amount is not the order's
  totals_mismatch         the bill's own totals disagree with its rows

An order of ours paid (refunded) that day but missing from the bill is only a break when
WeChat's own query denies it: a payment whose notice came after midnight is on the
day before's bill, and is matched there. A refund still `refunding` here that the bill
shows done is settled first through the refund query (refunds.check).

Breaks are stored (reconciliation_breaks) until a person resolves them; a re-run of a
day replaces its open breaks and keeps the resolved ones, never finding again a break
a person has closed. A `paid_at_wechat_only` of one of our orders starts the
lost-callback recovery at once -- WeChat's order query, then payments.confirm_paid,
which marks it paid and recharges it exactly once -- and its break is then resolved by
`reconcile` with what was done.
"""
import json
import logging
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

import sqlalchemy as sa

from .. import database
from ..clients.wechat import RefundStatus, WeChatRejected, WeChatUnavailable
from ..extensions import db
from ..logs import event
from ..models import Order, Reconciliation, ReconciliationBreak
from ..timeutil import utcnow
from . import audit, payments, refunds, state
from .state import PAID_STATUSES, PaymentStatus

log = logging.getLogger("elife.reconcile")

CHINA_OFFSET = timedelta(hours=8)
KINDS = ("paid_at_wechat_only", "paid_here_only", "amount_mismatch", "refund_at_wechat_only",
         "refund_here_only", "refund_amount_mismatch", "totals_mismatch")
LOOKUP_CHUNK = 500  # order numbers per IN (...) lookup


def china_today(now=None):
    return ((now or utcnow()) + CHINA_OFFSET).date()


def default_day(now=None):
    """WeChat's bill day to reconcile when none is named: yesterday, China time."""
    return china_today(now) - timedelta(days=1)


def utc_window(day):
    """The China-time day as naive UTC [start, end)."""
    start = datetime.combine(day, time()) - CHINA_OFFSET
    return start, start + timedelta(days=1)


@dataclass
class Break:
    kind: str
    order_number: str | None
    ours: object      # fen, None (no such record here), or for totals the rows' sums
    theirs: object    # fen, None (not at WeChat), or for totals the bill's totals line
    detail: str = ""
    recoverable: bool = False  # one of our orders, unpaid here: the lost-callback recovery

    def key(self):
        return (self.kind, self.order_number, _j(self.ours), _j(self.theirs))


@dataclass
class Result:
    day: date
    wechat: dict
    ours: dict
    breaks: list = field(default_factory=list)  # found by this run and not closed by a person before
    kept_resolved: int = 0                      # found again, already resolved by a person
    recovered: list = field(default_factory=list)

    @property
    def status(self):
        return "breaks" if self.breaks else ("resolved" if self.kept_resolved else "balanced")


def _j(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


# -- the run ---------------------------------------------------------------------------------

def run(svc, day, actor="reconcile"):
    """Reconcile one bill day; a Result. Raises BillNotReady (try later), and WeChat's or
    the bill's errors (nothing stored then)."""
    client = svc.pay
    bill = client.download_bill(day)
    start, end = utc_window(day)
    breaks = []

    differ = bill.totals_differences()
    if differ:
        breaks.append(Break("totals_mismatch", None, {k: v[0] for k, v in differ.items()},
                            {k: v[1] for k, v in differ.items()}, "the bill's totals are not the sum of its rows"))

    orders = _orders_by_number({r.out_trade_no for r in bill.rows})
    billed_trades = {r.out_trade_no for r in bill.trades}
    for row in bill.trades:
        o = orders.get(row.out_trade_no)
        if o is None or state.unpaid(o):
            breaks.append(Break("paid_at_wechat_only", row.out_trade_no, None, row.order_fee,
                                "no such order here" if o is None else "unpaid here", recoverable=o is not None))
        elif o.total_fee != row.order_fee:
            breaks.append(Break("amount_mismatch", row.out_trade_no, o.total_fee, row.order_fee))

    ours_paid = _ours(Order.paid_at, start, end, PAID_STATUSES)
    elsewhere = 0
    for n, fee in ours_paid:
        if n in billed_trades:
            continue
        said = _order_query(client, n)
        if said in ("SUCCESS", "REFUND"):  # trade states: paid, or paid and refunded since
            elsewhere += 1  # paid at WeChat: on another day's bill, matched there
        else:
            breaks.append(Break("paid_here_only", n, fee, None, f"order query: {said}"))

    billed_refunds = {r.out_trade_no for r in bill.refunds}
    for row in bill.refunds:
        o = orders.get(row.out_trade_no)
        if o is not None and state.refunding(o):
            refunds.check(svc, o.order_number, actor)  # WeChat says done: let its query settle it
            o = state.read_fresh(o.order_number)
        if o is None or not state.refunded(o):
            breaks.append(Break("refund_at_wechat_only", row.out_trade_no, None, row.applied_refund_fee,
                                "no such order here" if o is None else f"{o.payment_status} here"))
        elif o.total_fee != row.applied_refund_fee:
            breaks.append(Break("refund_amount_mismatch", row.out_trade_no, o.total_fee, row.applied_refund_fee))

    ours_refunded = _ours(Order.refunded_at, start, end, (PaymentStatus.REFUNDED,))
    refunds_elsewhere = 0
    for n, fee in ours_refunded:
        if n in billed_refunds:
            continue
        said = _refund_query(client, n)
        if said == RefundStatus.SUCCESS:
            refunds_elsewhere += 1
        else:
            breaks.append(Break("refund_here_only", n, fee, None, f"refund query: {said}"))

    result = Result(
        day=day,
        wechat={"trades": len(bill.trades), "tradeFee": sum(r.order_fee for r in bill.trades),
                "refunds": len(bill.refunds), "refundFee": sum(r.applied_refund_fee for r in bill.refunds),
                "rows": len(bill.rows), "totals": bill.totals},
        ours={"trades": len(ours_paid), "tradeFee": sum(f for _, f in ours_paid),
              "refunds": len(ours_refunded), "refundFee": sum(f for _, f in ours_refunded),
              "onOtherDays": elsewhere + refunds_elsewhere},
        breaks=breaks)
    ids = database.run_unit(svc.settings, lambda: _store(result), "reconcile_store")
    for b, break_id in zip(result.breaks, ids):
        if b.recoverable:
            _recover(svc, b, break_id, result, actor)
    level = logging.WARNING if result.breaks else logging.INFO
    event(log, level, "reconciled", day=day.strftime("%Y%m%d"), status=result.status,
          breaks=len(result.breaks), recovered=len(result.recovered),
          wechat_trades=result.wechat["trades"], our_trades=result.ours["trades"])
    for b in result.breaks:
        event(log, logging.WARNING, "reconciliation_break", order=b.order_number, kind=b.kind,
              day=day.strftime("%Y%m%d"), ours=_j(b.ours), theirs=_j(b.theirs))
    return result


def _orders_by_number(numbers):
    """{order number: Order (detached)} for the bill's numbers (the unique index)."""
    found = {}
    numbers = sorted(n for n in numbers if n)
    for i in range(0, len(numbers), LOOKUP_CHUNK):
        rows = db.session.execute(sa.select(Order.__table__).where(
            Order.order_number.in_(numbers[i:i + LOOKUP_CHUNK]))).mappings().all()
        found.update({r["order_number"]: Order(**r) for r in rows})
    db.session.commit()
    return found


def _ours(column, start, end, statuses):
    """[(order number, fee)] of our orders with `column` in [start, end) (its index)."""
    rows = db.session.execute(
        sa.select(Order.order_number, Order.total_fee)
        .where(column >= start, column < end, Order.payment_status.in_(statuses))
        .order_by(column, Order.id)).all()
    db.session.commit()
    return [(n, f) for n, f in rows]


def _order_query(client, n):
    try:
        return client.query_order(n).state
    except (WeChatUnavailable, WeChatRejected) as exc:
        return f"not asked ({str(exc)[:80]})"


def _refund_query(client, n):
    try:
        return client.query_refund(n).status
    except (WeChatUnavailable, WeChatRejected) as exc:
        return f"not asked ({str(exc)[:80]})"


def _store(result):
    """The day's row and its breaks, in one transaction: the open breaks of an earlier
    run are replaced by this run's (one found again keeps its row), the resolved ones
    kept (and not found again). Returns the ids of result.breaks (which it trims to
    those not already resolved)."""
    now = utcnow()
    conn = db.session.connection()
    rec, brk = Reconciliation.__table__, ReconciliationBreak.__table__
    row_q = sa.select(rec.c.id).where(rec.c.bill_date == result.day)
    if db.engine.dialect.name == "mysql":
        row_q = row_q.with_for_update()  # one run of a day at a time
    rec_id = conn.execute(row_q).scalar()
    values = dict(
        status=None, wechat_trades=result.wechat["trades"], wechat_fee=result.wechat["tradeFee"],
        wechat_refunds=result.wechat["refunds"], wechat_refund_fee=result.wechat["refundFee"],
        our_trades=result.ours["trades"], our_fee=result.ours["tradeFee"],
        our_refunds=result.ours["refunds"], our_refund_fee=result.ours["refundFee"], last_run_at=now)
    if rec_id is None:
        rec_id = conn.execute(rec.insert().values(bill_date=result.day, runs=0, breaks_found=0,
                                                  first_run_at=now, **{**values, "status": "balanced"})
                              ).inserted_primary_key[0]
    earlier = conn.execute(sa.select(brk.c.id, brk.c.kind, brk.c.order_number, brk.c.ours, brk.c.theirs,
                                     brk.c.resolved_at).where(brk.c.bill_date == result.day)).all()
    resolved = {(r.kind, r.order_number, r.ours, r.theirs) for r in earlier if r.resolved_at is not None}
    still_open = {(r.kind, r.order_number, r.ours, r.theirs): r.id for r in earlier if r.resolved_at is None}
    found = result.breaks
    result.breaks = [b for b in found if b.key() not in resolved]
    result.kept_resolved = len(found) - len(result.breaks)
    ids = []
    for b in result.breaks:  # an open break found again keeps its row (and id, and found_at)
        ids.append(still_open.pop(b.key(), None) or conn.execute(brk.insert().values(
            bill_date=result.day, kind=b.kind, order_number=b.order_number, ours=_j(b.ours),
            theirs=_j(b.theirs), detail=b.detail[:500] or None, found_at=now)).inserted_primary_key[0])
    if still_open:  # open breaks no longer found: the difference is gone
        conn.execute(brk.delete().where(brk.c.id.in_(list(still_open.values()))))
    conn.execute(rec.update().where(rec.c.id == rec_id).values(
        **{**values, "status": result.status}, breaks_found=len(found), runs=rec.c.runs + 1))
    db.session.commit()
    return ids


def _recover(svc, b, break_id, result, actor):
    """The lost-callback recovery for a trade the bill shows paid and we hold unpaid:
    WeChat's order query, then confirm_paid (paid, and recharged once)."""
    n = b.order_number
    order = state.read_fresh(n)
    if order is None or not state.unpaid(order):
        return
    try:
        trade = svc.pay.query_order(n)
    except (WeChatUnavailable, WeChatRejected) as exc:
        event(log, logging.WARNING, "order_query_failed", order=n, actor=actor, error=str(exc))
        return
    event(log, logging.WARNING, "lost_callback", "支付回调丢失，已通过订单查询补单", order=n, actor=actor)
    decision = payments.confirm_paid(svc, order, trade, None, actor)
    if decision not in ("paid", "duplicate"):
        return  # not confirmed, or flagged (amount_mismatch): the break stays for a person
    after = state.read_fresh(n)
    note = (f"recovered by the reconciliation: WeChat's order query says {trade.state}; "
            f"now payment {after.payment_status}, recharge {after.recharge_status}")
    audit.record_event(n, "reconcile_recovered", actor, note)
    _resolve(break_id, actor, note)
    db.session.commit()
    result.recovered.append(n)


# -- a person closes a break -----------------------------------------------------------------

def _resolve(break_id, actor, note, day=None):
    brk = ReconciliationBreak.__table__
    where = [brk.c.id == break_id, brk.c.resolved_at.is_(None)]
    if day is not None:
        where.append(brk.c.bill_date == day)
    return db.session.connection().execute(brk.update().where(*where).values(
        resolved_at=utcnow(), resolved_by=actor[:64], resolved_note=note[:4000])).rowcount == 1


def resolve_break(day, break_id, actor, note):
    """A person closes one open break of `day` with a note; True when this call did.
    Committed."""
    note = (note or "").strip()
    if not note:
        raise ValueError("a note is required to resolve a break")
    done = _resolve(break_id, actor, note, day)
    db.session.commit()
    if done:
        event(log, logging.INFO, "break_resolved", day=day.strftime("%Y%m%d"), id=break_id, actor=actor)
    return done
