"""What the operator's page reads: the anomaly list, one order with its audit trail (and
the subscribe messages it earned), and
the reconciliation days with their breaks. Read-only; every list is bounded and walks
an index (idx_anomaly_reason, the order_number indexes of the audit tables,
uq_reconciliations_bill_date, idx_reconciliation_breaks_day). Rows and models come back;
api/views/admin.py shapes them."""
import sqlalchemy as sa

from ..extensions import db
from ..fulfil import state
from ..models import OperatorCall, Order, OrderEvent, PaymentNotice, Reconciliation, ReconciliationBreak
from ..notify import outbox
from ..shop import phones

ANOMALY_LIST_LIMIT = 100
TRAIL_LIMIT = 200
RECONCILIATION_DAYS = 14
BREAKS_LIMIT = 500


def anomalies(limit=None):
    """Orders with anomaly_reason set, newest first, at most `limit` (ANOMALY_LIST_LIMIT);
    and how many in all."""
    limit = limit or ANOMALY_LIST_LIMIT
    flagged = state.flagged(Order)
    rows = db.session.execute(
        sa.select(Order.order_number, Order.created_at, Order.phone_number, Order.payment_status,
                  Order.recharge_status, Order.anomaly_reason, Order.total_fee, Order.updated_at)
        .where(flagged).order_by(Order.created_at.desc(), Order.id.desc()).limit(limit)).all()
    total = db.session.execute(sa.select(sa.func.count()).select_from(Order).where(flagged)).scalar()
    db.session.commit()
    return rows, total


def order_state(order_number):
    """(payment_status, recharge_status, anomaly_reason) as stored now."""
    row = db.session.execute(sa.select(Order.payment_status, Order.recharge_status, Order.anomaly_reason)
                             .where(Order.order_number == order_number)).one()
    db.session.commit()
    return row


def order_detail(order_number, status_query):
    """The order, its payment notices, operator calls and order events (oldest first, the
    latest TRAIL_LIMIT of each), and what a person may do with it; None when there is no
    such order. `status_query`: whether the operator has one (UNITEL_STATUS_PATH)."""
    order = db.session.query(Order).filter_by(order_number=order_number).one_or_none()
    if order is None:
        db.session.commit()
        return None
    db.session.expunge(order)

    def latest(model, limit=TRAIL_LIMIT):
        rows = db.session.execute(sa.select(model).where(model.order_number == order_number)
                                  .order_by(model.id.desc()).limit(limit)).scalars().all()
        return list(reversed(rows))

    notices, calls, events = latest(PaymentNotice), latest(OperatorCall), latest(OrderEvent)
    for row in (*notices, *calls, *events):
        db.session.expunge(row)
    db.session.commit()
    messages = outbox.for_order(order_number)
    return {
        "order": order,
        "phone": phones.mask(order.phone_number),
        "notices": notices,
        "calls": calls,
        "events": events,
        "messages": messages,  # the subscribe messages it earned (at most one per kind)
        "status_query": status_query,
        # Without a status query there is no one to ask: a person confirms with Unitel.
        "can_reconcile": state.awaiting_operator(order) and status_query,
        "can_confirm": state.awaiting_confirmation(order) and not status_query,
        "can_refund": state.refund_due(order),
        "refunding": state.refunding(order),  # accepted by WeChat, not yet confirmed
        "can_resolve": state.flagged(order),
        "can_give_up": state.lost_by_operator(order) and status_query,  # it asks the status query once more
    }


# -- the reconciliation -------------------------------------------------------------------------

def _open_counts(days):
    if not days:
        return {}
    rows = db.session.execute(
        sa.select(ReconciliationBreak.bill_date, sa.func.count())
        .where(ReconciliationBreak.bill_date.in_(days), ReconciliationBreak.resolved_at.is_(None))
        .group_by(ReconciliationBreak.bill_date)).all()
    return dict(rows)


def reconciliation_days(limit=RECONCILIATION_DAYS):
    """The latest reconciled bill days, newest first: [(reconciliations row, open breaks)]."""
    recs = db.session.execute(sa.select(Reconciliation).order_by(Reconciliation.bill_date.desc())
                              .limit(limit)).scalars().all()
    counts = _open_counts([r.bill_date for r in recs])
    db.session.commit()
    return [(r, counts.get(r.bill_date, 0)) for r in recs]


def reconciliation_day(day):
    """One reconciled day and its breaks (open first, then resolved), as (the
    reconciliations row, [reconciliation_breaks rows]); None if never run."""
    rec = db.session.execute(sa.select(Reconciliation).where(Reconciliation.bill_date == day)).scalar_one_or_none()
    if rec is None:
        db.session.commit()
        return None
    breaks = db.session.execute(
        sa.select(ReconciliationBreak).where(ReconciliationBreak.bill_date == day)
        .order_by(ReconciliationBreak.resolved_at.is_not(None), ReconciliationBreak.id)
        .limit(BREAKS_LIMIT)).scalars().all()
    for row in (rec, *breaks):
        db.session.expunge(row)  # read as they are now: the commit must not expire them into a re-read
    db.session.commit()
    return rec, breaks
