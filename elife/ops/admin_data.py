"""What the operator's page reads: the anomaly list, one order with its audit trail, and
the reconciliation days with their breaks. Read-only; every list is bounded and walks
an index (idx_anomaly_reason, the order_number indexes of the audit tables,
uq_reconciliations_bill_date, idx_reconciliation_breaks_day)."""
import json

import sqlalchemy as sa

from .. import config
from ..clients import unitel
from ..extensions import db
from ..fulfil import state
from ..models import OperatorCall, Order, OrderEvent, PaymentNotice, Reconciliation, ReconciliationBreak
from ..shop import phones
from ..shop.orders import receipt_json
from ..timeutil import iso

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
    items = [{
        "orderNumber": r.order_number, "createdAt": iso(r.created_at), "updatedAt": iso(r.updated_at),
        "phone": phones.mask(r.phone_number), "paymentStatus": r.payment_status,
        "rechargeStatus": r.recharge_status, "anomalyReason": r.anomaly_reason, "totalFee": r.total_fee,
    } for r in rows]
    return items, total


def order_state(order_number):
    """(payment_status, recharge_status, anomaly_reason) as stored now."""
    row = db.session.execute(sa.select(Order.payment_status, Order.recharge_status, Order.anomaly_reason)
                             .where(Order.order_number == order_number)).one()
    db.session.commit()
    return row


def order_detail(order_number):
    """The order, its payment notices, operator calls and order events (oldest first, the
    latest TRAIL_LIMIT of each); None when there is no such order."""
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
    asks = unitel.has_status_query(config.current())
    return {
        "order": order,
        "phone": phones.mask(order.phone_number),
        "notices": notices,
        "calls": calls,
        "events": events,
        "receipt": receipt_json(order),
        "statusQuery": asks,
        # Without a status query there is no one to ask: a person confirms with Unitel.
        "canReconcile": state.awaiting_operator(order) and asks,
        "canConfirm": state.awaiting_confirmation(order) and not asks,
        "canRefund": state.refund_due(order),
        "canResolve": state.flagged(order),
        "canGiveUp": state.lost_by_operator(order) and asks,  # it asks the status query once more
    }


def order_detail_json(detail):
    """order_detail as JSON: the order (the phone number masked, as in the logs), its
    notices, operator calls and events, and the actions it allows."""
    o = detail["order"]
    order = {c.key: getattr(o, c.key) for c in Order.__table__.columns if c.key not in ("id", "user_id")}
    order["phone_number"] = detail["phone"]
    return {
        "order": {k: _plain(v) for k, v in order.items()},
        "notices": [{"id": n.id, "receivedAt": iso(n.received_at), "decision": n.decision, "detail": n.detail,
                     "headers": n.headers, "body": n.body} for n in detail["notices"]],
        "operatorCalls": [{"id": c.id, "at": iso(c.created_at), "kind": c.kind, "outcome": c.outcome,
                           "httpStatus": c.http_status, "latencyMs": c.latency_ms, "answer": c.answer}
                          for c in detail["calls"]],
        "events": [{"id": e.id, "at": iso(e.created_at), "event": e.event, "actor": e.actor, "note": e.note}
                   for e in detail["events"]],
        "receipt": detail["receipt"],
        "actions": {k: detail[k] for k in ("canReconcile", "canConfirm", "canRefund", "canGiveUp", "canResolve")},
    }


def _plain(value):
    """A column's value as JSON holds it: times in ISO UTC, Decimals as strings."""
    if hasattr(value, "strftime"):
        return iso(value)
    if isinstance(value, (int, str)) or value is None:
        return value
    return str(value)


# -- the reconciliation -------------------------------------------------------------------------

def _day_json(rec, open_breaks):
    return {
        "date": rec.bill_date.strftime("%Y%m%d"),
        "state": "breaks" if open_breaks else ("resolved" if rec.breaks_found else "balanced"),
        "openBreaks": open_breaks, "breaksFound": rec.breaks_found, "runs": rec.runs,
        "lastRunAt": iso(rec.last_run_at),
        "wechat": {"trades": rec.wechat_trades, "tradeFee": rec.wechat_fee,
                   "refunds": rec.wechat_refunds, "refundFee": rec.wechat_refund_fee},
        "ours": {"trades": rec.our_trades, "tradeFee": rec.our_fee,
                 "refunds": rec.our_refunds, "refundFee": rec.our_refund_fee},
    }


def _open_counts(days):
    if not days:
        return {}
    rows = db.session.execute(
        sa.select(ReconciliationBreak.bill_date, sa.func.count())
        .where(ReconciliationBreak.bill_date.in_(days), ReconciliationBreak.resolved_at.is_(None))
        .group_by(ReconciliationBreak.bill_date)).all()
    return dict(rows)


def reconciliation_days(limit=RECONCILIATION_DAYS):
    """The latest reconciled bill days, newest first, with their open breaks."""
    recs = db.session.execute(sa.select(Reconciliation).order_by(Reconciliation.bill_date.desc())
                              .limit(limit)).scalars().all()
    counts = _open_counts([r.bill_date for r in recs])
    db.session.commit()
    return [_day_json(r, counts.get(r.bill_date, 0)) for r in recs]


def reconciliation_day(day):
    """One reconciled day and its breaks (open first, then resolved); None if never run."""
    rec = db.session.execute(sa.select(Reconciliation).where(Reconciliation.bill_date == day)).scalar_one_or_none()
    if rec is None:
        db.session.commit()
        return None
    breaks = db.session.execute(
        sa.select(ReconciliationBreak).where(ReconciliationBreak.bill_date == day)
        .order_by(ReconciliationBreak.resolved_at.is_not(None), ReconciliationBreak.id)
        .limit(BREAKS_LIMIT)).scalars().all()
    items = [{
        "id": b.id, "kind": b.kind, "orderNumber": b.order_number,
        "ours": json.loads(b.ours) if b.ours else None, "theirs": json.loads(b.theirs) if b.theirs else None,
        "detail": b.detail, "foundAt": iso(b.found_at), "resolvedAt": iso(b.resolved_at),
        "resolvedBy": b.resolved_by, "resolvedNote": b.resolved_note,
    } for b in breaks]
    out = _day_json(rec, sum(1 for b in items if b["resolvedAt"] is None))
    db.session.commit()
    return {**out, "breaks": items}
