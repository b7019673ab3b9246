"""The recharge engine end to end (issue 5): the service under gunicorn with several
workers, the sandbox as its own process over real HTTP, the real database. The sandbox
plays the customer paying and WeChat delivering the callback; its fake Unitel answers in
the mode a test sets. What is asserted is what a person would check: the order's state
(through the API and in the database), the operator's log, the refunds WeChat made, the
audit rows and the log lines.
"""
import json
import os
import signal
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from conftest import mysql_only, order_row, wait_settled
from elife.fulfil import recharge, refunds
from elife.extensions import db
from elife.timeutil import utcnow
from elife.models import Order
from test_recharge import age_claim, double_topups, kinds, log_lines, operator_calls, refunds_for, run

pytestmark = pytest.mark.e2e

OK = {"errcode": 0, "errmsg": "OK"}
PHRASE = "订单正在被其他进程处理"  # the seed's runbook greps for this and for already_processing


@pytest.fixture
def buyer(live):
    return live.login("e2e-recharge-buyer")


def deliver(live, notice):
    """Deliver a WeChat notice to the service ourselves, as WeChat (or its retry) would."""
    r = requests.post(live.url + notice["path"], headers=notice["headers"],
                      data=json.dumps(notice["body"]), timeout=30)
    return r.status_code, r.json()


# -- every operator mode, after a payment through the sandbox ---------------------------------

# mode -> (paymentStatus, rechargeStatus, anomaly_reason, submits that reached the operator,
#          the audit row's outcome, how its answer starts, its HTTP status)
MODES = {
    "success": ("paid", "success", None, 1, "success", "000 ", 200),
    "slow": ("paid", "success", None, 1, "success", "000 ", 200),
    "fail": ("refunded", "failed", None, 1, "failed", "101 ", 200),
    "timeout": ("paid", "unknown", "recharge_unknown", 1, "unknown", "ReadTimeout", None),
    # A connection closed without an answer (not, say, an empty 204 the sandbox failed to drop).
    "drop": ("paid", "unknown", "recharge_unknown", 1, "unknown", "ConnectionError", None),
    "unknown": ("paid", "unknown", "recharge_unknown", 1, "unknown", "777 ", 200),
    # A gateway failing in front of the operator: the request never reached it.
    "5xx": ("paid", "unknown", "recharge_unknown", 0, "unknown", "http_500", 500),
}


@pytest.mark.parametrize("mode", list(MODES))
def test_each_operator_mode_ends_in_its_state(live, sandbox, buyer, ctx, mode):
    payment, status, reason, submits, outcome, answer, http_status = MODES[mode]
    phone = "89200001"
    n = live.new_paid_ready_order(buyer, phone=phone)
    sandbox.mode(mode, msisdn=phone)

    started = time.monotonic()
    r = sandbox.pay(n)  # the sandbox marks it paid and delivers the callback to gunicorn
    elapsed = time.monotonic() - started
    assert (r.status_code, r.json()) == (200, OK)
    assert elapsed < 5, "WeChat gives the callback 5 seconds"
    # Answered with the claim committed; the top-up runs after the answer.
    assert order_row(n)["recharge_at"] is not None

    wait_settled(n)
    seen = live.get_order(buyer, n)
    assert (seen["paymentStatus"], seen["rechargeStatus"]) == (payment, status)
    row = order_row(n)
    assert (row["payment_status"], row["recharge_status"], row["anomaly_reason"]) == (payment, status, reason)
    assert row["recharge_at"] is not None and row["submit_count"] == 1
    assert [e["requestId"] for e in sandbox.log()] == [n] * submits
    [call] = [c for c in operator_calls(n) if c["kind"] not in ("refund", "refund_query")]
    assert (call["kind"], call["outcome"], call["http_status"]) == ("submit", outcome, http_status)
    assert call["answer"].startswith(answer), call["answer"]
    if mode == "slow":
        assert call["latency_ms"] >= 250
    if mode == "timeout":
        assert 900 <= call["latency_ms"] < 2000, "given up at UNITEL_READ_TIMEOUT, before the answer"
    if status == "unknown":
        assert "recharge_unknown" in row["anomaly_details"]

    if mode == "fail":
        # Refunded exactly once, and asking again refunds nothing more.
        assert row["refunded_at"] is not None
        [refund] = refunds_for(sandbox, n)
        assert (refund["refund_fee"], refund["requests"]) == (row["total_fee"], 1)
        assert run(refunds.refund, n, "test") == "refunded"
        [refund] = refunds_for(sandbox, n)
        assert refund["requests"] == 1
        # Refunded once WeChat's refund query said so: asked at once, and again by the refund
        # notice when it lands before that answer (both say SUCCESS; one UPDATE wins).
        asked = kinds(n)
        assert [k for k in asked if k[0] != "refund_query"] == [("submit", "failed"), ("refund", "success")]
        assert {k for k in asked if k[0] == "refund_query"} == {("refund_query", "success")}
    else:
        assert refunds_for(sandbox, n) == []

    # WeChat's retry of the same notice is answered OK and sends nothing to the operator.
    assert deliver(live, sandbox.notice(n)) == (200, OK)
    assert len(sandbox.submits_for(n)) == submits
    assert order_row(n)["recharge_status"] == status
    assert double_topups() == []


# -- at most once under concurrency -----------------------------------------------------------

@mysql_only
def test_ten_concurrent_deliveries_of_one_paid_notice_submit_once(live, sandbox, buyer, ctx):
    phone = "89200002"
    n = live.new_paid_ready_order(buyer, phone=phone)
    assert sandbox.pay(n, notify=False).json() == {"paid": True, "notified": False}
    notice = sandbox.notice(n)
    deliveries = 10
    barrier = threading.Barrier(deliveries)
    replies, errors = [None] * deliveries, []

    def one(i):
        try:
            barrier.wait(10)
            replies[i] = deliver(live, notice)
        except Exception as exc:  # noqa: BLE001 -- reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(deliveries)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert replies == [(200, OK)] * deliveries
    wait_settled(n)
    assert [e["requestId"] for e in sandbox.log()] == [n]
    assert live.get_order(buyer, n)["rechargeStatus"] == "success"
    row = order_row(n)
    assert (row["payment_status"], row["recharge_status"], row["submit_count"]) == ("paid", "success", 1)
    assert kinds(n) == [("submit", "success")]
    assert double_topups() == []

    # One delivery marked it paid and won the claim; the nine others were turned away, each
    # as a duplicate notice that then lost the claim with the seed's phrase (its runbook:
    # "只有1次成功,其余被拦截").
    assert len(log_lines(live.log_dir, n, "payment_confirmed")) == 1
    assert len(log_lines(live.log_dir, n, "claim_won")) == 1
    assert len(log_lines(live.log_dir, n, "duplicate_notice")) == deliveries - 1
    lost = log_lines(live.log_dir, n, "already_processing")
    assert len(lost) == deliveries - 1 and all(PHRASE in line for line in lost)


def test_a_duplicate_while_processing_logs_the_seeds_phrase(live, sandbox, buyer, ctx):
    """The seed's concurrency test: while one process recharges an order, every other
    delivery of its notice is turned away with 订单正在被其他进程处理."""
    phone = "89200003"
    n = live.new_paid_ready_order(buyer, phone=phone)
    sandbox.mode("timeout", msisdn=phone)  # the winner waits a second for the operator
    sandbox.pay(n, notify=False)
    notice = sandbox.notice(n)
    first = threading.Thread(target=deliver, args=(live, notice))
    first.start()
    try:
        wait_for(lambda: order_row(n)["recharge_status"] == "processing", 5)
        assert deliver(live, notice) == (200, OK)
        assert order_row(n)["recharge_status"] == "processing"
    finally:
        first.join(10)
    assert len(sandbox.submits_for(n)) == 1
    lost = log_lines(live.log_dir, n, "already_processing")
    assert len(lost) == 1 and PHRASE in lost[0]


# -- a worker killed between the claim and the operator's answer ------------------------------

def test_a_worker_killed_mid_call_leaves_the_order_processing_for_the_sweep(live, sandbox, buyer, ctx):
    phone = "89200004"
    n = live.new_paid_ready_order(buyer, phone=phone)
    sandbox.mode("timeout", msisdn=phone)  # received and done; the answer comes after 2 s
    master = gunicorn_master()
    workers = children(master)
    assert len(workers) >= 2

    paying = threading.Thread(target=sandbox.pay, args=(n,))
    paying.start()
    try:
        # Claimed, committed, and the request is at the operator: kill now.
        wait_for(lambda: order_row(n)["recharge_status"] == "processing" and sandbox.submits_for(n), 5)
        for pid in workers:  # gunicorn starts new workers in their place
            os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
    finally:
        paying.join(15)
    wait_for_workers(live, master, workers)

    # Past the moment the killed worker would have had its answer (1 s read timeout),
    # nothing has moved: the claim stands, the payment stands, nobody submitted again.
    time.sleep(max(0.0, killed_at + 1.2 - time.monotonic()))
    row = order_row(n)
    assert (row["payment_status"], row["recharge_status"]) == ("paid", "processing")
    assert row["recharge_at"] is not None and row["submit_count"] == 1
    assert row["recharged_at"] is None and row["refunded_at"] is None
    assert [e["requestId"] for e in sandbox.log()] == [n]
    # WeChat had its answer before the submit; a repeat of its notice is turned away and
    # nothing is resent.
    sandbox.mode("success", msisdn=phone)
    assert deliver(live, sandbox.notice(n)) == (200, OK)
    assert order_row(n)["recharge_status"] == "processing"
    assert len(sandbox.submits_for(n)) == 1

    # The sweep's query for stuck claims does not take it yet (another worker may still be
    # waiting for its answer)...
    assert n not in stuck_processing()
    # ...and does once SWEEP_STUCK_SECONDS have passed since the claim.
    age_claim(n)
    assert n in stuck_processing()
    # Settled through the status query: the operator had done it. Still one submit.
    assert run(recharge.reconcile, n, "test") == "success"
    assert len(sandbox.submits_for(n)) == 1
    # The killed worker's request has its row (written before sending); its answer never came.
    assert kinds(n) == [("submit", "sent"), ("status", "success")]
    assert double_topups() == []
    # The service serves on.
    other = live.new_paid_ready_order(buyer, phone="89200005")
    assert sandbox.pay(other).json() == OK
    wait_settled(other)
    assert live.get_order(buyer, other)["rechargeStatus"] == "success"


def stuck_processing():
    """The sweep's selection of stuck claims: processing, claimed before now minus
    SWEEP_STUCK_SECONDS (idx_recharge_status_at_seqid serves it)."""
    with db.engine.connect() as c:
        return c.execute(
            sa.select(Order.order_number)
            .where(Order.recharge_status == "processing", Order.recharge_at < utcnow() - timedelta(seconds=300))  # SWEEP_STUCK_SECONDS
            .order_by(Order.recharge_at, Order.id)).scalars().all()


# -- processes --------------------------------------------------------------------------------

def wait_for(predicate, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"not true within {seconds}s")


def _ppid(pid):
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def children(pid):
    kids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if _ppid(int(p.name)) == pid:
                    kids.append(int(p.name))
            except (OSError, ValueError, IndexError):
                pass  # gone while we looked
    return sorted(kids)


def _cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def gunicorn_master():
    """The `live` fixture's gunicorn: our own child running wsgi:app."""
    if not Path("/proc/self/stat").exists():
        pytest.skip("needs /proc to find the gunicorn workers")
    masters = [p for p in children(os.getpid()) if "gunicorn" in _cmdline(p) and "wsgi:app" in _cmdline(p)]
    assert len(masters) == 1, masters
    return masters[0]


def wait_for_workers(live, master, killed, seconds=30):
    """Until gunicorn has replaced every killed worker and the service answers /health."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        current = children(master)
        if len(current) == len(killed) and not set(current) & set(killed):
            try:
                if all(requests.get(f"{live.url}/health", timeout=2).status_code == 200 for _ in range(len(killed))):
                    return
            except requests.RequestException:
                pass
        time.sleep(0.1)
    raise AssertionError("gunicorn did not come back after its workers were killed")
