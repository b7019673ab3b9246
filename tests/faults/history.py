"""The check of the whole history, once the sweeps have settled everything.

Sources, each read directly (never through a proxy):
  - the sandbox's submit log: every top-up request that reached the operator;
  - the operator's own record of each request id (its status endpoint);
  - WeChat's record of each trade (its order query) and its refunds;
  - our database: orders and the operator_calls audit table.
"""
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta

import sqlalchemy as sa

AUTO_REASONS = {"recharge_unknown"}  # set by the machine while an answer is unclear, not for a person
PAID_AT_WECHAT = {"SUCCESS", "REFUND"}


@dataclass
class Findings:
    orders: int = 0
    submits: int = 0
    resubmits_allowed: int = 0
    resubmits: Counter = field(default_factory=Counter)   # audit 'resubmit' rows by outcome
    submitted_twice: list = field(default_factory=list)   # (order, why)
    lost: list = field(default_factory=list)              # (order, state)
    inconsistent: list = field(default_factory=list)      # (order, why)
    states: Counter = field(default_factory=Counter)
    flagged: Counter = field(default_factory=Counter)


def unsettled(conn, sandbox):
    """Paid orders the sweeps still have work on (the settle loop waits for 0): paid here
    and neither recharged, refunded nor flagged for a person; or paid at WeChat while we
    still think unpaid (a lost callback not recovered yet)."""
    open_here = conn.execute(sa.text(
        "SELECT COUNT(*) FROM orders WHERE payment_status = 'paid' AND ("
        " recharge_status IN ('pending', 'processing', 'unknown') OR recharge_status = 'failed')"
        " AND (anomaly_reason IS NULL OR anomaly_reason = 'recharge_unknown')")).scalar()
    unpaid = conn.execute(sa.text(
        "SELECT order_number FROM orders WHERE payment_status = 'unpaid' AND payment_created_at IS NOT NULL"
    )).scalars().all()
    with ThreadPoolExecutor(8) as pool:
        states = list(pool.map(lambda n: sandbox.trade(n).get("trade_state"), unpaid))
    return open_here + sum(1 for s in states if s in PAID_AT_WECHAT)


def check(conn, sandbox, stuck_seconds, known_numbers=()):
    f = Findings()
    orders = {r.order_number: r for r in conn.execute(sa.text(
        "SELECT order_number, payment_status, recharge_status, anomaly_reason, submit_count, recharge_at "
        "FROM orders")).all()}
    f.orders = len(orders)
    calls = defaultdict(list)
    for r in conn.execute(sa.text(
            "SELECT order_number, id, kind, outcome, created_at FROM operator_calls ORDER BY id")).all():
        calls[r.order_number].append(r)
        if r.kind == "resubmit":
            f.resubmits[r.outcome] += 1

    # 1. At most once: the operator's log, per request id.
    log = sandbox.submit_log()
    f.submits = len(log)
    per_request = Counter(e["requestId"] for e in log)
    for rid, n in sorted(per_request.items()):
        if n == 1:
            continue
        why = _second_submit_unexplained(rid, n, orders.get(rid), calls.get(rid, []), stuck_seconds)
        if why:
            f.submitted_twice.append((rid, why))
        else:
            f.resubmits_allowed += 1

    # 2. Nothing lost, and the three parties agree.
    numbers = sorted(set(orders) | set(known_numbers) | set(per_request))
    with ThreadPoolExecutor(16) as pool:
        trades = dict(zip(numbers, pool.map(lambda n: sandbox.trade(n).get("trade_state"), numbers)))
        topups = dict(zip(numbers, pool.map(sandbox.topup, numbers)))
    refunded_at_wechat = {r["out_trade_no"] for r in sandbox.refunds()}

    for n in numbers:
        o = orders.get(n)
        trade, topup = trades.get(n), topups.get(n)
        if o is None:
            if trade in PAID_AT_WECHAT or per_request.get(n):
                f.inconsistent.append((n, f"paid or submitted ({trade}, {per_request.get(n, 0)} submits) "
                                          "but no such order"))
            continue
        f.states[(o.payment_status, o.recharge_status)] += 1
        if o.anomaly_reason:
            f.flagged[o.anomaly_reason] += 1
        person_flag = o.anomaly_reason and o.anomaly_reason not in AUTO_REASONS
        if trade in PAID_AT_WECHAT:
            if not (o.recharge_status == "success" or o.payment_status == "refunded" or person_flag):
                f.lost.append((n, f"{o.payment_status}/{o.recharge_status} flag={o.anomaly_reason}"))
        elif o.payment_status != "unpaid":
            f.inconsistent.append((n, f"{o.payment_status} here, trade {trade} at WeChat"))
        if o.recharge_status == "success" and topup != "SUCCESS":
            f.inconsistent.append((n, f"success here, operator says {topup}"))
        if o.payment_status == "refunded" and topup == "SUCCESS":
            f.inconsistent.append((n, "refunded here, yet topped up by the operator"))
        if (n in refunded_at_wechat) != (o.payment_status == "refunded") and not person_flag:
            f.inconsistent.append((n, f"refund at WeChat: {n in refunded_at_wechat}, payment here: "
                                      f"{o.payment_status}"))
        if topup == "SUCCESS" and o.recharge_status != "success" and not person_flag:
            f.inconsistent.append((n, f"topped up by the operator, {o.recharge_status} here"))
    return f


def _second_submit_unexplained(rid, n, order, calls, stuck_seconds):
    """None when the second submit is the one the design allows: the audit table records
    a 'status' answer 'not_found' at least SWEEP_STUCK_SECONDS after the claim, and a
    'resubmit' after it. Anything else is a reason why not."""
    if n > 2:
        return f"{n} submits"
    if order is None:
        return "2 submits for an order we do not have"
    resubmits = [c for c in calls if c.kind == "resubmit"]
    if not resubmits:
        return "2 submits, no 'resubmit' recorded"
    before = [c for c in calls if c.kind == "status" and c.outcome == "not_found" and c.id < resubmits[0].id]
    if not before:
        return "2 submits, no status answer 'not_found' before the 'resubmit'"
    nf = before[-1]
    if order.recharge_at is not None and nf.created_at < order.recharge_at + timedelta(seconds=stuck_seconds):
        return (f"resubmitted {(nf.created_at - order.recharge_at).total_seconds():.1f} s after the claim, "
                f"sooner than SWEEP_STUCK_SECONDS={stuck_seconds}")
    return None
