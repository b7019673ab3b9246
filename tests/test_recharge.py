"""The recharge state machine in-process (issue 5): the app's own callback through the
Flask test client, the sandbox over real HTTP, the real database (SQLite or MariaDB).

Settling unclear answers (recharge.reconcile), refunds done once, the claim when several
callers race for one order, the claim's SQL semantics on MariaDB, and the audit query
"was this number topped up twice?". The same paths under gunicorn are in
test_recharge_e2e.py.
"""
import json
import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import current_app

from conftest import SEED_ORDER, mysql_only, order_row
from elife import services
from elife.fulfil import recharge, refunds
from elife.clients import unitel
from elife.extensions import db
from elife.models import OperatorCall, Order
from elife.timeutil import utcnow

OK = {"errcode": 0, "errmsg": "OK"}
STUCK = 300  # SWEEP_STUCK_SECONDS in settings_env

# -- the audit query ----------------------------------------------------------------------

# "Was this number topped up twice?" Every top-up request we send is an operator_calls row
# of kind 'submit' (the first) or 'resubmit' (the one second request, same request id,
# allowed only after the operator's status query said it never saw the first). A number
# was (or may have been) topped up twice for one order when, for one request id:
#   - there is more than one first submit (the claim let two processes through), or
#   - more than one resubmit (the "one second request" rule broken), or
#   - a resubmit with no 'not_found' status answer recorded before it (a blind retry), or
#   - the operator said "success" to more than one of them.
DOUBLE_TOPUPS = sa.text("""
    SELECT c.request_id, c.msisdn,
           SUM(CASE WHEN c.kind = 'submit' THEN 1 ELSE 0 END)   AS submits,
           SUM(CASE WHEN c.kind = 'resubmit' THEN 1 ELSE 0 END) AS resubmits,
           SUM(CASE WHEN c.outcome = 'success' THEN 1 ELSE 0 END) AS successes
    FROM operator_calls c
    WHERE c.kind IN ('submit', 'resubmit')
    GROUP BY c.request_id, c.msisdn
    HAVING SUM(CASE WHEN c.kind = 'submit' THEN 1 ELSE 0 END) > 1
        OR SUM(CASE WHEN c.kind = 'resubmit' THEN 1 ELSE 0 END) > 1
        OR SUM(CASE WHEN c.outcome = 'success' THEN 1 ELSE 0 END) > 1
        OR (SUM(CASE WHEN c.kind = 'resubmit' THEN 1 ELSE 0 END) > 0
            AND NOT EXISTS (SELECT 1 FROM operator_calls s
                            WHERE s.request_id = c.request_id
                              AND s.kind = 'status' AND s.outcome = 'not_found'
                              AND s.id < (SELECT MIN(r.id) FROM operator_calls r
                                          WHERE r.request_id = c.request_id AND r.kind = 'resubmit')))
""")


def double_topups():
    with db.engine.connect() as c:
        return [dict(r) for r in c.execute(DOUBLE_TOPUPS).mappings()]


def operator_calls(n):
    with db.engine.connect() as c:
        return [dict(r) for r in c.execute(sa.text(
            "SELECT order_number, request_id, msisdn, kind, outcome, http_status, answer, latency_ms "
            "FROM operator_calls WHERE order_number = :n ORDER BY id"), {"n": n}).mappings()]


def kinds(n):
    return [(c["kind"], c["outcome"]) for c in operator_calls(n)]


def run(entry_point, *args, **kwargs):
    """Call a recharge entry point as the sweep or a person would: in an app context (and
    so a database session) of its own. (The test client's requests share the test's app
    context and its session; a transaction left open there would show this call an old
    snapshot on MariaDB.)"""
    with current_app._get_current_object().app_context():
        return entry_point(services.current(), *args, **kwargs)


def update(n, **values):
    """Put an order into a state by hand (a state the real path passes through)."""
    with db.engine.begin() as c:
        c.execute(sa.update(Order).where(Order.order_number == n).values(**values))


def age_claim(n, seconds=STUCK + 1):
    """Move the claim back in time, as if SWEEP_STUCK_SECONDS had passed."""
    with db.engine.begin() as c:
        claimed = c.execute(sa.select(Order.recharge_at).where(Order.order_number == n)).scalar_one()
        assert claimed is not None
        c.execute(sa.update(Order).where(Order.order_number == n)
                  .values(recharge_at=claimed - timedelta(seconds=seconds)))


def log_lines(log_dir, n, key):
    text = (log_dir / "combined.log").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if f"event={key} " in line and f"order={n}" in line]


# -- getting an order into a state through the real path ----------------------------------

def new_order(client, headers, phone):
    r = client.post("/orders", json={**SEED_ORDER, "phoneNumber": phone}, headers=headers)
    assert r.status_code == 201, r.get_json()
    n = r.get_json()["orderNumber"]
    r = client.post("/payment/create", json={"orderNumber": n}, headers=headers)
    assert r.status_code == 200, r.get_json()
    return n


def pay_through_callback(client, sandbox, headers, phone, mode):
    """The customer pays in the sandbox; the notice WeChat would send is delivered to the
    app's own callback; the operator (sandbox) answers in `mode` for this number."""
    n = new_order(client, headers, phone)
    sandbox.mode(mode, msisdn=phone)
    assert sandbox.pay(n, notify=False).json() == {"paid": True, "notified": False}
    notice = sandbox.notice(n)
    r = client.post(notice["path"], headers=notice["headers"], data=json.dumps(notice["body"]))
    assert (r.status_code, r.get_json()) == (200, OK)
    return n


def refunds_for(sandbox, n):
    return [r for r in sandbox.refunds() if r["out_trade_no"] == n]


# -- settling an unclear answer with the status query -------------------------------------

@pytest.mark.parametrize("mode", ["unknown", "drop", "timeout"])
def test_unknown_settles_as_success_when_the_status_query_says_done(client, sandbox, customer, ctx, mode):
    n = pay_through_callback(client, sandbox, customer, "88110001", mode)
    row = order_row(n)
    assert (row["payment_status"], row["recharge_status"], row["anomaly_reason"]) == \
        ("paid", "unknown", "recharge_unknown")

    assert run(recharge.reconcile, n, "test") == "success"

    row = order_row(n)
    assert (row["payment_status"], row["recharge_status"]) == ("paid", "success")
    assert row["anomaly_reason"] is None, "the machine's own flag is cleared once settled"
    assert row["recharged_at"] is not None
    assert "recharge_unknown" in row["anomaly_details"], "the history of the flag is kept"
    assert len(sandbox.submits_for(n)) == 1, "the status query settles it; nothing is resubmitted"
    assert kinds(n) == [("submit", "unknown"), ("status", "success")]
    # Settled orders are left alone.
    assert run(recharge.reconcile, n, "test") == "success"
    assert kinds(n) == [("submit", "unknown"), ("status", "success")]
    assert double_topups() == []


def test_unknown_settles_as_failed_and_refunds_once_when_the_status_query_says_failed(
        client, sandbox, customer, ctx):
    phone = "88110002"
    # The gateway answered 500, so we do not know whether the operator saw the request...
    n = pay_through_callback(client, sandbox, customer, phone, "5xx")
    assert order_row(n)["recharge_status"] == "unknown"
    # ...and it had in fact passed it on, and the operator refused it (number not in
    # service). The sandbox has no mode for "a refusal whose answer was lost", so the
    # request that got through is replayed here with our own client, its answer dropped.
    sandbox.mode("fail", msisdn=phone)
    row = order_row(n)
    unitel.UnitelClient(current_app.config["SETTINGS"]).submit(
        journal_id=n, msisdn=row["phone_number"], recharge_type=row["recharge_type"],
        operator_code=row["operator_code"], amount_mnt=row["product_price_tg"])
    assert len(sandbox.submits_for(n)) == 1

    assert run(recharge.reconcile, n, "test") == "failed"

    row = order_row(n)
    assert (row["payment_status"], row["recharge_status"]) == ("refunded", "failed")
    assert row["refunded_at"] is not None
    assert row["anomaly_reason"] is None, "settled and refunded: nothing left for a person"
    assert "recharge_unknown" in row["anomaly_details"]
    assert len(sandbox.submits_for(n)) == 1, "a definite failure is never resubmitted"
    [refund] = refunds_for(sandbox, n)
    assert (refund["refund_fee"], refund["requests"]) == (row["total_fee"], 1)
    # Asking again (a person, the sweep) changes nothing and asks WeChat nothing.
    assert run(refunds.refund, n, "test") == "refunded"
    assert run(recharge.reconcile, n, "test") == "failed"
    [refund] = refunds_for(sandbox, n)
    assert refund["requests"] == 1
    # Refunded once WeChat's refund query confirmed it (asked at once: the sandbox settles at once).
    assert kinds(n) == [("submit", "unknown"), ("status", "failed"), ("refund", "success"),
                        ("refund_query", "success")]


def test_not_found_before_stuck_seconds_stays_unknown_and_is_not_resubmitted(client, sandbox, customer, ctx):
    n = pay_through_callback(client, sandbox, customer, "88110003", "5xx")
    sandbox.mode("success", msisdn="88110003")  # a resubmit now would reach the operator

    assert run(recharge.reconcile, n, "test") == "unknown"
    assert run(recharge.reconcile, n, "test", force=True) == "unknown", "force never allows an early resubmit"

    row = order_row(n)
    assert (row["payment_status"], row["recharge_status"], row["submit_count"]) == ("paid", "unknown", 1)
    assert row["anomaly_reason"] == "recharge_unknown"
    assert sandbox.submits_for(n) == []
    assert kinds(n) == [("submit", "unknown"), ("status", "not_found"), ("status", "not_found")]


def test_not_found_after_stuck_seconds_resubmits_once_with_the_same_request_id(
        client, sandbox, customer, ctx, log_dir):
    n = pay_through_callback(client, sandbox, customer, "88110004", "5xx")
    assert sandbox.submits_for(n) == []
    sandbox.mode("success", msisdn="88110004")
    age_claim(n)

    assert run(recharge.reconcile, n, "test") == "success"

    [entry] = sandbox.log()
    assert (entry["requestId"], entry["msisdn"]) == (n, "88110004"), "same request id as the first"
    row = order_row(n)
    assert (row["payment_status"], row["recharge_status"], row["submit_count"]) == ("paid", "success", 2)
    assert row["anomaly_reason"] is None
    assert kinds(n) == [("submit", "unknown"), ("status", "not_found"), ("resubmit", "success")]
    resubmit = operator_calls(n)[2]
    assert (resubmit["request_id"], resubmit["order_number"]) == (n, n)
    assert len(log_lines(log_dir, n, "resubmit")) == 1
    # Done: the status query is not even asked again.
    assert run(recharge.reconcile, n, "test") == "success"
    assert len(operator_calls(n)) == 3
    assert double_topups() == []


def test_a_third_request_is_never_sent(make_app, client, sandbox, customer):
    """With SWEEP_STUCK_SECONDS=0 every reconcile may resubmit -- and still only once."""
    n = pay_through_callback(client, sandbox, customer, "88110005", "5xx")
    eager = make_app(SWEEP_STUCK_SECONDS=0)
    with eager.app_context():
        assert run(recharge.reconcile, n, "test") == "unknown"  # not found -> resubmit -> 5xx again
        row = order_row(n)
        assert (row["recharge_status"], row["submit_count"]) == ("unknown", 2)

        assert run(recharge.reconcile, n, "test") == "unknown"  # not found a second time -> a person
        row = order_row(n)
        assert row["anomaly_reason"] == "operator_lost_request"
        assert (row["payment_status"], row["recharge_status"], row["submit_count"]) == ("paid", "unknown", 2)

        # Even with the operator healthy again, nothing more is sent: a person decides.
        sandbox.mode("success", msisdn="88110005")
        assert run(recharge.reconcile, n, "test") == "unknown"
        assert sandbox.submits_for(n) == []
        assert [k for k, _ in kinds(n) if k in ("submit", "resubmit")] == ["submit", "resubmit"]
        assert kinds(n) == [("submit", "unknown"), ("status", "not_found"), ("resubmit", "unknown"),
                            ("status", "not_found"), ("status", "not_found")]
        assert order_row(n)["anomaly_reason"] == "operator_lost_request"
        assert double_topups() == []


def test_only_the_operators_own_not_found_allows_the_resubmit(make_app, client, sandbox, customer, ctx):
    """The one resubmit is allowed when the *operator* says it never saw the request (its
    JSON answer, code 404). A 404 page from something in front of it -- a proxy, a
    gateway without the route -- says nothing about the request: unknown, no resubmit."""
    settings = current_app.config["SETTINGS"]
    never_sent = unitel.UnitelClient(settings).status("ORD00000000000000000000")
    assert (never_sent.outcome, never_sent.code, never_sent.http_status) == (unitel.NOT_FOUND, "404", 404)

    n = pay_through_callback(client, sandbox, customer, "88110012", "unknown")  # the operator has it
    age_claim(n)
    # Our token is still good (the client caches it); only the route is not the operator's.
    gateway = make_app(UNITEL_API_URL=f"{sandbox.url}/gateway-without-this-route")
    with gateway.app_context():
        answer = unitel.UnitelClient(gateway.config["SETTINGS"]).status(n)
        assert (answer.outcome, answer.http_status) == (unitel.UNKNOWN, 404)
        assert run(recharge.reconcile, n, "test") == "unknown"
    assert kinds(n) == [("submit", "unknown"), ("status", "unknown")]
    assert order_row(n)["submit_count"] == 1
    # Through the operator's own route it settles: it had done the top-up.
    assert run(recharge.reconcile, n, "test") == "success"
    assert len(sandbox.submits_for(n)) == 1


def test_processing_is_left_alone_until_stuck(client, sandbox, customer, ctx):
    """A claim younger than SWEEP_STUCK_SECONDS may still be waiting for its answer in
    another worker: reconcile does not even ask the operator about it."""
    n = new_order(client, customer, "88110006")
    sandbox.pay(n, notify=False)
    # Claimed a moment ago by a worker that has not had its answer yet (or never will).
    update(n, payment_status="paid", paid_at=utcnow(), recharge_status="processing",
           recharge_at=utcnow(), submit_count=1, version=Order.version + 2)

    assert run(recharge.reconcile, n, "test") == "processing"
    assert operator_calls(n) == []
    # Once stuck, the status query settles it: the operator never heard of it, so the one
    # resubmit goes out.
    age_claim(n)
    assert run(recharge.reconcile, n, "test") == "success"
    assert kinds(n) == [("status", "not_found"), ("resubmit", "success")]
    assert len(sandbox.submits_for(n)) == 1


# -- refunds ---------------------------------------------------------------------------------

def test_definite_failure_is_refunded_once_even_when_asked_again(client, sandbox, customer, ctx):
    n = pay_through_callback(client, sandbox, customer, "88110007", "fail")
    row = order_row(n)
    assert (row["payment_status"], row["recharge_status"]) == ("refunded", "failed")
    assert len(sandbox.submits_for(n)) == 1
    assert len(refunds_for(sandbox, n)) == 1

    assert run(refunds.refund, n, "test") == "refunded"
    assert run(recharge.reconcile, n, "test") == "failed"
    [refund] = refunds_for(sandbox, n)
    assert (refund["refund_fee"], refund["requests"]) == (row["total_fee"], 1)

    # A crash between WeChat's refund and our UPDATE leaves the order paid+failed; the
    # refund asked again carries the same out_refund_no, so WeChat refunds once.
    update(n, payment_status="paid", refunded_at=None)
    assert run(refunds.refund, n, "test") == "refunded"
    [refund] = refunds_for(sandbox, n)
    assert refund["requests"] == 2  # asked twice, refunded once
    assert order_row(n)["payment_status"] == "refunded"
    assert len(sandbox.submits_for(n)) == 1


def test_a_refund_wechat_refuses_leaves_an_anomaly_not_a_silent_failure(client, sandbox, customer, ctx):
    sandbox.wechat_down("refund")
    n = pay_through_callback(client, sandbox, customer, "88110008", "fail")
    row = order_row(n)
    assert (row["payment_status"], row["recharge_status"], row["anomaly_reason"]) == \
        ("paid", "failed", "refund_failed")
    assert refunds_for(sandbox, n) == []

    sandbox.wechat_down()
    assert run(refunds.refund, n, "test") == "refunded"
    row = order_row(n)
    assert (row["payment_status"], row["anomaly_reason"]) == ("refunded", None)
    assert len(refunds_for(sandbox, n)) == 1
    assert len(sandbox.submits_for(n)) == 1


# -- the claim under contention ---------------------------------------------------------------

def test_callbacks_and_sweeps_claiming_at_the_same_instant_submit_once(app, client, sandbox, customer, log_dir):
    """Eight callers (callback and sweep alike) call recharge_paid_order for one paid,
    unclaimed order at the same instant: one claim, one submit; every other caller logs
    already_processing with the seed's phrase and does nothing else."""
    n = new_order(client, customer, "88110009")
    sandbox.pay(n, notify=False)
    with app.app_context():
        # Paid and not yet claimed: the state right after the callback's `paid` commit.
        update(n, payment_status="paid", paid_at=utcnow(), version=Order.version + 1)
    sandbox.mode("slow", msisdn="88110009")  # the winner is still talking to the operator
    callers = 8
    barrier = threading.Barrier(callers)
    results, errors = [], []

    def call(actor):
        try:
            with app.app_context():
                barrier.wait(10)
                results.append(recharge.recharge_paid_order(services.current(), n, actor))
        except Exception as exc:  # noqa: BLE001 -- reported below
            errors.append(exc)

    threads = [threading.Thread(target=call, args=("callback" if i % 2 else "sweep",)) for i in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert results.count("success") == 1, results
    assert len(sandbox.submits_for(n)) == 1
    with app.app_context():
        row = order_row(n)
        assert (row["recharge_status"], row["submit_count"]) == ("success", 1)
        assert kinds(n) == [("submit", "success")]
        assert double_topups() == []
    assert len(log_lines(log_dir, n, "claim_won")) == 1
    lost = log_lines(log_dir, n, "already_processing")
    assert len(lost) == callers - 1
    assert all("订单正在被其他进程处理" in line for line in lost)


@mysql_only
def test_claim_blocks_then_reports_zero_rows_and_repeatable_read_shows_a_stale_row(order, ctx):
    """The claim is `UPDATE ... WHERE order_number=? AND recharge_at IS NULL AND version=?`.
    Two transactions race for it: the second blocks on the row lock the first holds, and
    once the first commits it re-reads the latest committed row (an UPDATE is a locking,
    "current" read even under REPEATABLE READ), finds it no longer matches and reports
    rowcount 0. A plain SELECT in that same transaction still shows the snapshot taken at
    its first read -- recharge_at NULL, as if the claim were free. That is why
    recharge.py ends its read transaction (state.read_fresh commits) before it claims, and
    decides by the UPDATE's rowcount, never by a read."""
    n = order["orderNumber"]
    update(n, payment_status="paid")
    claim = sa.text("UPDATE orders SET recharge_status = 'processing', recharge_at = :now, "
                    "version = version + 1 WHERE order_number = :n AND recharge_at IS NULL AND version = :v")
    read = sa.text("SELECT recharge_at, version FROM orders WHERE order_number = :n")

    a = db.engine.connect().execution_options(isolation_level="REPEATABLE READ")
    b = db.engine.connect().execution_options(isolation_level="REPEATABLE READ")
    watcher = db.engine.connect()
    try:
        assert b.get_isolation_level() == "REPEATABLE READ"
        b_id = b.execute(sa.text("SELECT CONNECTION_ID()")).scalar()
        # B reads first: its snapshot says the order is free, at version v.
        seen = b.execute(read, {"n": n}).one()
        assert seen.recharge_at is None
        v = seen.version

        # A claims and holds the row lock (not committed yet).
        assert a.execute(claim, {"n": n, "v": v, "now": utcnow()}).rowcount == 1

        outcome = {}

        def b_claims():
            try:
                outcome["rowcount"] = b.execute(claim, {"n": n, "v": v, "now": utcnow()}).rowcount
            except Exception as exc:  # noqa: BLE001 -- reported below
                outcome["error"] = exc

        t = threading.Thread(target=b_claims)
        t.start()
        # B is waiting for A's row lock, not merely slow. (InnoDB refreshes what
        # information_schema.INNODB_TRX shows only when it was not read in the last 0.1 s,
        # so poll slower than that.)
        deadline = time.monotonic() + 5
        state = None
        while time.monotonic() < deadline:
            time.sleep(0.25)
            state = watcher.execute(sa.text(
                "SELECT trx_state FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id = :id"),
                {"id": b_id}).scalar()
            watcher.commit()
            if state == "LOCK WAIT":
                break
        assert state == "LOCK WAIT", state
        assert t.is_alive()

        a.commit()
        t.join(10)
        assert not t.is_alive()
        assert "error" not in outcome, outcome.get("error")
        assert outcome["rowcount"] == 0, "the loser matches no row once the winner committed"

        # Same transaction, plain read: the stale snapshot. The claim looks free.
        stale = b.execute(read, {"n": n}).one()
        assert (stale.recharge_at, stale.version) == (None, v)
        # A locking read sees the truth even inside the old transaction...
        assert b.execute(sa.text(str(read) + " FOR UPDATE"), {"n": n}).one().recharge_at is not None
        b.commit()
        # ...and so does a plain read in a new transaction.
        fresh = b.execute(read, {"n": n}).one()
        assert (fresh.recharge_at is not None, fresh.version) == (True, v + 1)
        b.commit()
    finally:
        for c in (a, b, watcher):
            c.close()


@mysql_only
def test_mariadb_rowcount_is_rows_matched_with_sqlalchemy_and_rows_changed_without_found_rows(order, ctx):
    """What rowcount means on MariaDB depends on a client flag. Without CLIENT.FOUND_ROWS
    the server reports rows *changed*; with it, rows *matched* by the WHERE clause.
    SQLAlchemy's MySQL dialects (PyMySQL included) always set FOUND_ROWS, so in our code
    rowcount is rows matched. For the claim both agree -- the winner always changes the
    row (recharge_at, version + 1), the loser matches nothing -- but an UPDATE that
    matches a row and leaves it as it was counts 1 through SQLAlchemy and 0 through a
    plain PyMySQL connection. Every conditional UPDATE in recharge.py bumps `version`, so
    it always changes what it matches, and its rowcount means the same under either flag."""
    import pymysql
    from pymysql.constants import CLIENT

    n = order["orderNumber"]
    update(n, payment_status="paid")
    no_op = "UPDATE orders SET payment_status = 'paid' WHERE order_number = %s"

    raw = db.engine.raw_connection()
    try:
        assert raw.driver_connection.client_flag & CLIENT.FOUND_ROWS, "SQLAlchemy sets FOUND_ROWS"
    finally:
        raw.close()
    with db.engine.begin() as c:
        assert c.execute(sa.text("UPDATE orders SET payment_status = 'paid' WHERE order_number = :n"),
                         {"n": n}).rowcount == 1  # matched

    url = db.engine.url

    def plain(flags):
        return pymysql.connect(host=url.host, port=url.port or 3306, user=url.username,
                               password=url.password or "", database=url.database,
                               client_flag=flags, autocommit=True)

    conn = plain(0)
    try:
        assert not conn.client_flag & CLIENT.FOUND_ROWS
        with conn.cursor() as cur:
            assert cur.execute(no_op, (n,)) == 0  # matched 1, changed 0
    finally:
        conn.close()
    conn = plain(CLIENT.FOUND_ROWS)
    try:
        with conn.cursor() as cur:
            assert cur.execute(no_op, (n,)) == 1  # the flag, and only the flag, makes it 1
    finally:
        conn.close()
    # A claim-shaped UPDATE changes what it matches, so both count it the same.
    conn = plain(0)
    try:
        with conn.cursor() as cur:
            v = order_row(n)["version"]
            assert cur.execute("UPDATE orders SET version = version + 1 WHERE order_number = %s "
                               "AND version = %s", (n, v)) == 1
            assert cur.execute("UPDATE orders SET version = version + 1 WHERE order_number = %s "
                               "AND version = %s", (n, v)) == 0
    finally:
        conn.close()


# -- the audit --------------------------------------------------------------------------------

def test_every_operator_call_is_an_audit_row(client, sandbox, customer, ctx):
    n = pay_through_callback(client, sandbox, customer, "88110010", "success")
    [call] = operator_calls(n)
    assert (call["order_number"], call["request_id"], call["msisdn"]) == (n, n, "88110010")
    assert (call["kind"], call["outcome"], call["http_status"]) == ("submit", "success", 200)
    assert isinstance(call["latency_ms"], int) and 0 <= call["latency_ms"] < 1000

    n = pay_through_callback(client, sandbox, customer, "88110011", "timeout")
    [call] = operator_calls(n)
    assert (call["kind"], call["outcome"], call["http_status"]) == ("submit", "unknown", None)
    assert call["answer"].startswith("ReadTimeout")
    assert 900 <= call["latency_ms"] < 2000, "the client gave up at UNITEL_READ_TIMEOUT (1 s)"


def test_the_double_topup_query_finds_doubles_and_nothing_after_real_runs(client, sandbox, customer, ctx):
    numbers = {}
    for i, mode in enumerate(("success", "slow", "fail", "drop", "unknown", "5xx")):
        numbers[mode] = pay_through_callback(client, sandbox, customer, f"8812000{i}", mode)
    for mode in ("drop", "unknown"):
        assert run(recharge.reconcile, numbers[mode], "test") == "success"
    age_claim(numbers["5xx"])
    sandbox.mode("success", msisdn="88120005")
    assert run(recharge.reconcile, numbers["5xx"], "test") == "success"  # the one allowed resubmit
    assert len(sandbox.log()) == 6
    assert double_topups() == []

    # The query is not blind: plant the doubles it exists to find.
    twice, blind = numbers["success"], numbers["unknown"]
    with db.engine.begin() as c:
        for n, kind, outcome in ((twice, "submit", "success"), (blind, "resubmit", "unknown")):
            c.execute(sa.insert(OperatorCall).values(
                order_number=n, request_id=n, msisdn=order_row(n)["phone_number"], kind=kind,
                outcome=outcome, created_at=utcnow()))
    found = {r["request_id"]: r for r in double_topups()}
    assert set(found) == {twice, blind}
    assert (found[twice]["submits"], found[twice]["successes"]) == (2, 2)
    assert (found[blind]["submits"], found[blind]["resubmits"]) == (1, 1)
