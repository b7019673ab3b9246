"""The seed's four monitoring queries, on our columns, and the reconciliation's state,
shared by `flask elife report` and /admin. Each has its alert threshold beside it.

  1. recharge success rate of paid orders          alert below 95 %
  2. anomalies by reason and day                    alert above 1 % of a day's orders
  3. recharge delay (paid -> claim, paid -> success) alert avg > 5 s or max > 60 s
  4. orders waiting for compensation               alert more than 10, or oldest > 30 min
     and, without a status query (UNITEL_STATUS_PATH=none), unclear top-ups waiting
     for a person to confirm with Unitel             alert at any
  5. the daily reconciliation with WeChat's bill   alert when a day with orders, older
                                                   than two days (China time), was never
                                                   reconciled
  6. the customer's messages by day: sent,         counted, no alert (Prometheus has
     no_consent, failed, skipped, still pending    elife_notifications_total)

Windows keep every query on an index range (never the whole table): the last
`hours` for 1 and 3 (the seed's query 3 uses 24 h), the last `days` for 2.
"""
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

import sqlalchemy as sa

from ..extensions import db
from ..fulfil import reconcile, state
from ..fulfil.state import RechargeStatus
from ..notify import outbox
from ..models import OperatorCall, Order, Reconciliation, ReconciliationBreak
from ..shop.phones import mask
from ..timeutil import iso, utcnow

SUCCESS_RATE_MIN = Decimal("95")
ANOMALY_RATE_MAX = Decimal("1")
DELAY_AVG_MAX = 5
DELAY_MAX_MAX = 60
PENDING_COUNT_MAX = 10
PENDING_MINUTES_MAX = 30
PENDING_AFTER = timedelta(minutes=5)
UNRECONCILED_AFTER_DAYS = 2


def _seconds_between(start, end):
    if db.engine.dialect.name == "mysql":
        return sa.func.timestampdiff(sa.text("MICROSECOND"), start, end) / 1000000.0
    return (sa.func.julianday(end) - sa.func.julianday(start)) * 86400.0


def _pct(part, whole):
    if not whole:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.01"), ROUND_HALF_UP)


def success_rate(now, hours):
    """Query 1: recharge status of orders paid in the window (refunding and refunded ones
    count too: they were paid, and their recharge failed)."""
    since = now - timedelta(hours=hours)
    rows = db.session.execute(
        sa.select(Order.recharge_status, sa.func.count())
        .where(Order.paid_at >= since, state.paid_ever(Order))
        .group_by(Order.recharge_status)).all()
    total = sum(n for _, n in rows)
    by_status = [{"rechargeStatus": st, "count": n, "percentage": str(_pct(n, total))}
                 for st, n in sorted(rows, key=lambda r: -r[1])]
    success = next((n for st, n in rows if st == RechargeStatus.SUCCESS), 0)
    rate = _pct(success, total)
    alert = rate is not None and rate < SUCCESS_RATE_MIN
    return {"hours": hours, "paid": total, "byStatus": by_status,
            "successRate": None if rate is None else str(rate), "alert": alert,
            "threshold": f"success > {SUCCESS_RATE_MIN}%"}


def anomalies_by_day(now, days):
    """Query 2: anomalies by reason and day, and as a share of that day's orders."""
    since = (now - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
    day = sa.func.date(Order.created_at)
    rows = db.session.execute(
        sa.select(Order.anomaly_reason, day.label("day"), sa.func.count())
        .where(Order.anomaly_reason.is_not(None), Order.created_at >= since)
        .group_by(Order.anomaly_reason, day)).all()
    orders_per_day = {str(d): n for d, n in db.session.execute(
        sa.select(day, sa.func.count()).where(Order.created_at >= since).group_by(day)).all()}
    items = sorted(({"reason": r, "date": str(d), "count": n} for r, d, n in rows),
                   key=lambda x: (x["date"], x["count"]), reverse=True)
    per_day = {}
    for item in items:
        per_day[item["date"]] = per_day.get(item["date"], 0) + item["count"]
    daily = []
    for d, n in sorted(per_day.items(), reverse=True):
        rate = _pct(n, orders_per_day.get(d, 0))
        daily.append({"date": d, "anomalies": n, "orders": orders_per_day.get(d, 0),
                      "rate": None if rate is None else str(rate)})
    alert = any(x["rate"] is not None and Decimal(x["rate"]) > ANOMALY_RATE_MAX for x in daily)
    return {"days": days, "items": items, "daily": daily, "alert": alert,
            "threshold": f"anomalies < {ANOMALY_RATE_MAX}% of a day's orders"}


def recharge_delay(now, hours):
    """Query 3: seconds from paid to the claim (the seed's paidAt -> rechargeAt) and to
    success, for orders recharged successfully and paid in the window."""
    since = now - timedelta(hours=hours)
    to_claim = _seconds_between(Order.paid_at, Order.recharge_at)
    to_success = _seconds_between(Order.paid_at, Order.recharged_at)
    row = db.session.execute(
        sa.select(sa.func.count(), sa.func.avg(to_claim), sa.func.max(to_claim), sa.func.min(to_claim),
                  sa.func.avg(to_success), sa.func.max(to_success))
        .where(Order.paid_at >= since, state.delivered(Order),
               Order.recharge_at.is_not(None))).one()
    n, avg_c, max_c, min_c, avg_s, max_s = row

    def r(x):
        return None if x is None else round(float(x), 3)

    alert = n > 0 and ((avg_s or 0) > DELAY_AVG_MAX or (max_s or 0) > DELAY_MAX_MAX)
    return {"hours": hours, "count": n,
            "avgDelaySec": r(avg_c), "maxDelaySec": r(max_c), "minDelaySec": r(min_c),
            "avgToSuccessSec": r(avg_s), "maxToSuccessSec": r(max_s), "alert": bool(alert),
            "threshold": f"avg < {DELAY_AVG_MAX} s, max < {DELAY_MAX_MAX} s"}


def pending_compensation(now, has_status_query):
    """Query 4: paid, never claimed, for more than 5 minutes: the sweep is not keeping up."""
    cutoff = now - PENDING_AFTER
    n, oldest = db.session.execute(
        sa.select(sa.func.count(), sa.func.min(Order.paid_at))
        .where(state.claimable(Order), Order.paid_at < cutoff)).one()
    minutes = int((now - oldest).total_seconds() // 60) if oldest else 0
    unclear = db.session.execute(
        sa.select(sa.func.count()).where(state.awaiting_operator(Order))).scalar()
    alert = n > PENDING_COUNT_MAX or minutes > PENDING_MINUTES_MAX
    threshold = f"pending <= {PENDING_COUNT_MAX} and oldest <= {PENDING_MINUTES_MAX} min"
    unconfirmed, unconfirmed_since = None, None
    if not has_status_query:
        # Nothing will settle these but a person: any is an alert.
        unconfirmed, since = state.count_awaiting_confirmation()
        unconfirmed_since = iso(since)
        alert = alert or unconfirmed > 0
        threshold += "; no unclear top-up waiting for a person (no status query)"
    return {"pendingCount": n, "oldestPaidAt": iso(oldest), "delayMinutes": minutes,
            "unclearCount": unclear, "unconfirmedCount": unconfirmed, "oldestUnconfirmedAt": unconfirmed_since,
            "alert": alert, "threshold": threshold}


def reconciliation(now, days):
    """5: the last bill day reconciled and its state now (open breaks: "breaks"; all
    closed by a person: "resolved"), and the days of the window older than two days
    (China time) that had orders and were never reconciled."""
    today = reconcile.china_today(now)
    last = db.session.execute(sa.select(Reconciliation).order_by(Reconciliation.bill_date.desc())
                              .limit(1)).scalar_one_or_none()
    open_breaks, state = 0, None
    if last is not None:
        open_breaks = db.session.execute(sa.select(sa.func.count()).select_from(ReconciliationBreak).where(
            ReconciliationBreak.bill_date == last.bill_date, ReconciliationBreak.resolved_at.is_(None))).scalar()
        state = "breaks" if open_breaks else ("resolved" if last.breaks_found else "balanced")
    oldest, newest = today - timedelta(days=days), today - timedelta(days=UNRECONCILED_AFTER_DAYS + 1)
    done = set(db.session.execute(sa.select(Reconciliation.bill_date).where(
        Reconciliation.bill_date >= oldest, Reconciliation.bill_date <= newest)).scalars())
    missing = []
    day = newest
    while day >= oldest:
        if day not in done:
            start, end = reconcile.utc_window(day)
            if db.session.execute(sa.select(Order.id).where(Order.created_at >= start, Order.created_at < end)
                                  .limit(1)).first() is not None:
                missing.append(str(day))
        day -= timedelta(days=1)
    return {"lastDay": str(last.bill_date) if last else None, "state": state, "openBreaks": open_breaks,
            "lastRunAt": iso(last.last_run_at) if last else None, "unreconciledDays": missing,
            "alert": bool(missing),
            "threshold": f"every day with orders reconciled within {UNRECONCILED_AFTER_DAYS} days (China time)"}


def messages(now, days):
    """6: the subscribe messages earned each UTC day of the window, by what became of them."""
    since = (now - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
    per_day = {}
    for (d, status), n in outbox.counts_by_day(since).items():
        per_day.setdefault(d, {s: 0 for s in MESSAGE_STATUSES})[status if status in MESSAGE_STATUSES else "pending"] += n
    daily = [{"date": d, **counts} for d, counts in sorted(per_day.items(), reverse=True)]
    return {"days": days, "daily": daily, "alert": False, "threshold": "counted, no alert"}


# What the report calls each status of a message (sending: on its way now, counted as pending).
MESSAGE_STATUSES = ("sent", "no_consent", "failed", "skipped", "pending")

SECTIONS = ("successRate", "anomalies", "delay", "pending", "reconciliation")


def all_reports(*, has_status_query, hours=24, days=7, now=None):
    """Every report; `has_status_query`: whether the operator has a status query (without
    one, unclear top-ups wait for a person and count as an alert)."""
    now = now or utcnow()
    out = {
        "generatedAt": iso(now),
        "successRate": success_rate(now, hours),
        "anomalies": anomalies_by_day(now, days),
        "delay": recharge_delay(now, hours),
        "pending": pending_compensation(now, has_status_query),
        "reconciliation": reconciliation(now, days),
        "messages": messages(now, days),
    }
    db.session.commit()
    out["alert"] = any(out[k]["alert"] for k in SECTIONS)
    return out


def _shown(value, unit=""):
    """A figure for the terminal: '-' when there is none (Python's None never shows)."""
    return "-" if value is None else f"{value}{unit}"


def as_table(rep):
    """The reports as plain text for a terminal."""
    lines = [f"eLife report at {rep['generatedAt']}"]
    sr = rep["successRate"]
    lines.append(f"\n1. recharge success rate, orders paid in the last {sr['hours']} h "
                 f"({sr['threshold']}){'  ALERT' if sr['alert'] else ''}")
    lines.append(f"   paid: {sr['paid']}   success rate: {_shown(sr['successRate'], '%')}"
                 f"{'' if sr['paid'] else '  (no data: nothing paid in the window)'}")
    for x in sr["byStatus"]:
        lines.append(f"   {x['rechargeStatus']:<11} {x['count']:>8}  {x['percentage']:>6}%")
    an = rep["anomalies"]
    lines.append(f"\n2. anomalies by reason and day, last {an['days']} days "
                 f"({an['threshold']}){'  ALERT' if an['alert'] else ''}")
    for d in an["daily"]:
        lines.append(f"   {d['date']}  {d['anomalies']} of {d['orders']} orders ({_shown(d['rate'], '%')})")
        for x in (i for i in an["items"] if i["date"] == d["date"]):
            lines.append(f"      {x['reason']:<28} {x['count']:>6}")
    if not an["daily"]:
        lines.append("   none")
    dl = rep["delay"]
    lines.append(f"\n3. recharge delay, last {dl['hours']} h, {dl['count']} recharged "
                 f"({dl['threshold']}){'  ALERT' if dl['alert'] else ''}")
    if dl["count"]:
        lines.append(f"   paid -> claimed: avg {_shown(dl['avgDelaySec'], ' s')}, max {_shown(dl['maxDelaySec'], ' s')}, "
                     f"min {_shown(dl['minDelaySec'], ' s')}")
        lines.append(f"   paid -> success: avg {_shown(dl['avgToSuccessSec'], ' s')}, "
                     f"max {_shown(dl['maxToSuccessSec'], ' s')}")
    else:
        lines.append("   no data: nothing recharged in the window")
    pc = rep["pending"]
    lines.append(f"\n4. waiting for compensation ({pc['threshold']}){'  ALERT' if pc['alert'] else ''}")
    lines.append(f"   pending: {pc['pendingCount']}   oldest paid at: {_shown(pc['oldestPaidAt'])}   "
                 f"delay: {pc['delayMinutes']} min   unknown/processing: {pc['unclearCount']}")
    if pc["unconfirmedCount"] is not None:
        lines.append(f"   unclear, no status query, waiting for a person to confirm with Unitel: "
                     f"{pc['unconfirmedCount']}   oldest claimed at: {pc['oldestUnconfirmedAt'] or '-'}")
    rc = rep["reconciliation"]
    lines.append(f"\n5. reconciliation with WeChat's bill ({rc['threshold']}){'  ALERT' if rc['alert'] else ''}")
    lines.append(f"   last reconciled day: {rc['lastDay'] or 'never'}" + (
        f"   state: {rc['state']}   open breaks: {rc['openBreaks']}" if rc["lastDay"] else ""))
    if rc["unreconciledDays"]:
        lines.append("   never reconciled: " + ", ".join(rc["unreconciledDays"]))
    ms = rep["messages"]
    lines.append(f"\n6. messages to customers by day, last {ms['days']} days (UTC; {ms['threshold']})")
    for d in ms["daily"]:
        lines.append(f"   {d['date']}  sent {d['sent']}  no_consent {d['no_consent']}  failed {d['failed']}  "
                     f"skipped {d['skipped']}  pending {d['pending']}")
    if not ms["daily"]:
        lines.append("   none")
    lines.append("\nALERT: a threshold is crossed" if rep["alert"] else "\nall within thresholds")
    return "\n".join(lines)


# -- incidents (the seed's emergency response and duplicate-recharge runbook) -------------

def duplicate_submits(since=None):
    """Was any order sent to the operator twice? One query on the audit table.

    A `resubmit` row is the one second request the design allows (after the status query
    said the first never arrived); it is listed so a person can see it, and marked."""
    q = (sa.select(OperatorCall.order_number, OperatorCall.msisdn, sa.func.count(),
                   sa.func.sum(sa.case((OperatorCall.kind == "resubmit", 1), else_=0)))
         .where(OperatorCall.kind.in_(("submit", "resubmit")))
         .group_by(OperatorCall.order_number, OperatorCall.msisdn)
         .having(sa.func.count() > 1))
    if since is not None:
        q = q.where(OperatorCall.created_at >= since)
    rows = db.session.execute(q).all()
    db.session.commit()
    return [{"orderNumber": n, "msisdn": mask(m), "submits": c, "resubmits": int(r or 0),
             "explained": int(r or 0) == c - 1 and c == 2} for n, m, c, r in rows]


def incident_scope(since):
    """The seed's step 2 of the emergency response: every order paid since `since`
    (a deploy time), by state, with anything sent twice and anything flagged."""
    status_rows = db.session.execute(
        sa.select(Order.payment_status, Order.recharge_status, sa.func.count())
        .where(Order.paid_at >= since)
        .group_by(Order.payment_status, Order.recharge_status)).all()
    orders = db.session.execute(
        sa.select(Order.order_number, Order.phone_number, Order.total_fee, Order.paid_at,
                  Order.payment_status, Order.recharge_status, Order.submit_count, Order.anomaly_reason)
        .where(Order.paid_at >= since).order_by(Order.paid_at).limit(10000)).all()
    db.session.commit()
    return {
        "since": iso(since),
        "byStatus": [{"paymentStatus": p, "rechargeStatus": r, "count": n} for p, r, n in status_rows],
        "orders": [{"orderNumber": o.order_number, "phone": mask(o.phone_number), "totalFee": o.total_fee,
                    "paidAt": iso(o.paid_at), "paymentStatus": o.payment_status,
                    "rechargeStatus": o.recharge_status, "submits": o.submit_count,
                    "anomalyReason": o.anomaly_reason} for o in orders],
        "duplicateSubmits": duplicate_submits(since),
        "flagged": sum(1 for o in orders if o.anomaly_reason),
    }
