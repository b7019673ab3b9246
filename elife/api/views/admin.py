"""The operator's page as JSON (and the dicts its templates read): the anomaly list, one
order with its trail, the reconciled days and their breaks, the breaker; and a
reconciliation run's summary, as `flask elife reconcile --json` prints it."""
import json

from ...models import Order
from ...shop import phones
from ...timeutil import iso
from .orders import receipt

ACTIONS = (("canReconcile", "can_reconcile"), ("canConfirm", "can_confirm"), ("canRefund", "can_refund"),
           ("canGiveUp", "can_give_up"), ("canResolve", "can_resolve"))


def anomaly(row):
    """One row of admin_data.anomalies(), the phone number masked."""
    return {
        "orderNumber": row.order_number, "createdAt": iso(row.created_at), "updatedAt": iso(row.updated_at),
        "phone": phones.mask(row.phone_number), "paymentStatus": row.payment_status,
        "rechargeStatus": row.recharge_status, "anomalyReason": row.anomaly_reason, "totalFee": row.total_fee,
    }


def breaker(status, opened_at, seconds_left):
    """The operator breaker as breaker.state() says it."""
    return {"state": status, "openedAt": iso(opened_at), "secondsLeft": int(seconds_left)}


def order_detail(detail):
    """admin_data.order_detail as JSON: the order (the phone number masked, as in the
    logs), its notices, operator calls and events, and the actions it allows."""
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
        "messages": [message(m) for m in detail["messages"]],
        "receipt": receipt(o),
        "actions": {shown: detail[key] for shown, key in ACTIONS},
    }


def message(m):
    """One subscribe message of the order (a notifications row) and its fate."""
    return {"kind": m["kind"], "status": m["status"], "templateId": m["template_id"], "attempts": m["attempts"],
            "lastError": m["last_error"], "createdAt": iso(m["created_at"]), "sentAt": iso(m["sent_at"]),
            "nextAttemptAt": iso(m["next_attempt_at"]), "data": _data(m["data"])}


def _data(text):
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def _plain(value):
    """A column's value as JSON holds it: times in ISO UTC, Decimals as strings."""
    if hasattr(value, "strftime"):
        return iso(value)
    if isinstance(value, (int, str)) or value is None:
        return value
    return str(value)


# -- the reconciliation -------------------------------------------------------------------------

def reconciliation_day(rec, open_breaks):
    """One reconciled bill day (a reconciliations row) with its count of open breaks."""
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


def stored_break(b):
    """One reconciliation_breaks row."""
    return {
        "id": b.id, "kind": b.kind, "orderNumber": b.order_number,
        "ours": json.loads(b.ours) if b.ours else None, "theirs": json.loads(b.theirs) if b.theirs else None,
        "detail": b.detail, "foundAt": iso(b.found_at), "resolvedAt": iso(b.resolved_at),
        "resolvedBy": b.resolved_by, "resolvedNote": b.resolved_note,
    }


def reconciliation_detail(rec, breaks):
    """A reconciled day and its breaks, as admin_data.reconciliation_day reads them."""
    items = [stored_break(b) for b in breaks]
    return {**reconciliation_day(rec, sum(1 for b in items if b["resolvedAt"] is None)), "breaks": items}


def found_break(b):
    """A difference a run found (reconcile.Break)."""
    return {"kind": b.kind, "orderNumber": b.order_number, "ours": b.ours, "theirs": b.theirs}


def reconcile_run(result):
    """A run's summary (reconcile.Result): what `flask elife reconcile --json` prints."""
    return {"date": result.day.strftime("%Y%m%d"), "status": result.status, "wechat": result.wechat,
            "ours": result.ours, "breaks": [found_break(b) for b in result.breaks],
            "recovered": result.recovered}
