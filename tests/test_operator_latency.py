"""The operator never holds up WeChat or the customer (issue 14): the top-up runs after
WeChat's notice is answered, a slow operator gets its 30 s, a breaker stops taking money
while the operator is down, and unpaid orders expire.

The timing tests run the service under gunicorn (gthread workers, the recharge pool) on
MariaDB with a read timeout long enough for a slow operator, beside the suite's own
service; the sandbox plays WeChat and the operator over real HTTP.
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from conftest import REPO, SEED_ORDER, free_port, mysql_only, order_row, stop, wait_http, wait_settled
from elife import services
from elife.extensions import db
from elife.fulfil import breaker, sweep
from elife.models import Order
from elife.timeutil import utcnow
from test_recharge import age_claim, double_topups, kinds, run
from test_recharge_e2e import children, wait_for

OK = {"errcode": 0, "errmsg": "OK"}


class Service:
    """gunicorn wsgi:app with its own settings, on its own port, on the suite's database."""

    def __init__(self, settings_env, **overrides):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **settings_env, "PORT": str(self.port), "WEB_CONCURRENCY": "3",
                    "GUNICORN_ACCESS_LOG": "", "PYTHONUNBUFFERED": "1", **overrides}
        self.log = open(Path(settings_env["LOG_DIR"]) / f"gunicorn-{self.port}.out", "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "wsgi:app", "-c", "gunicorn.conf.py"],
                                     cwd=REPO, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        wait_http(f"{self.url}/health", proc=self.proc)

    def close(self):
        stop(self.proc)
        self.log.close()

    def login(self, code):
        r = requests.post(f"{self.url}/auth/login", json={"code": code}, timeout=10)
        r.raise_for_status()
        return {"Authorization": f"Bearer {r.json()['token']}"}

    def create_order(self, headers, phone):
        return requests.post(f"{self.url}/orders", headers=headers, timeout=10,
                             json={**SEED_ORDER, "phoneNumber": phone})

    def paid_at_wechat(self, sandbox, headers, phone):
        """An order paid at WeChat whose notice is ours to deliver (the sandbox would send
        it to the suite's other service)."""
        r = self.create_order(headers, phone)
        assert r.status_code == 201, r.text
        n = r.json()["orderNumber"]
        r = requests.post(f"{self.url}/payment/create", headers=headers, json={"orderNumber": n}, timeout=10)
        assert r.status_code == 200, r.text
        assert sandbox.pay(n, notify=False).status_code == 200
        return n

    def deliver(self, notice):
        """WeChat's delivery of a notice: (status, body, seconds until the answer)."""
        started = time.monotonic()
        r = requests.post(self.url + notice["path"], headers=notice["headers"],
                          data=json.dumps(notice["body"]), timeout=30)
        return r.status_code, r.json(), time.monotonic() - started


def set_mode(sandbox, mode, msisdn=None, delay=None):
    body = {"mode": mode, **({"msisdn": msisdn} if msisdn else {}), **({"delay": delay} if delay is not None else {})}
    requests.post(f"{sandbox.url}/unitel/_mode", json=body, timeout=5).raise_for_status()


@pytest.fixture(scope="module")
def slow_ok_service(migrated, settings_env, sandbox_server):
    """The production timeouts' shape: the operator may take up to 10 s here (30 in
    production) before its answer is unclear."""
    service = Service(settings_env, UNITEL_READ_TIMEOUT="10", GUNICORN_THREADS="4")
    yield service
    service.close()


@pytest.fixture
def slow(slow_ok_service, app, sandbox):
    return slow_ok_service


# -- WeChat never waits on the operator ------------------------------------------------------

@mysql_only
def test_twenty_payments_at_once_with_a_3_second_operator(slow, sandbox, ctx):
    set_mode(sandbox, "slow", delay=3)
    buyer = slow.login("latency-twenty")
    orders = [slow.paid_at_wechat(sandbox, buyer, f"8930{i:04d}") for i in range(20)]
    notices = [sandbox.notice(n) for n in orders]
    barrier = threading.Barrier(len(notices))
    answers = [None] * len(notices)

    def one(i):
        barrier.wait(10)
        answers[i] = slow.deliver(notices[i])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(notices))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert [(s, body) for s, body, _ in answers] == [(200, OK)] * 20
    slowest = max(secs for _, _, secs in answers)
    assert slowest < 1.5, f"WeChat waited {slowest:.2f} s for an answer; the operator takes 3"
    # The answer came with the claim committed; the top-ups follow, each sent once.
    for n in orders:
        assert order_row(n)["recharge_at"] is not None
    for n in orders:
        assert wait_settled(n, 15)["recharge_status"] == "success"
    assert sorted(e["requestId"] for e in sandbox.log()) == sorted(orders)
    assert double_topups() == []


@mysql_only
def test_a_6_second_operator_answer_settles_as_success(slow, sandbox, ctx):
    buyer = slow.login("latency-six")
    n = slow.paid_at_wechat(sandbox, buyer, "89310001")
    set_mode(sandbox, "slow", msisdn="89310001", delay=6)
    status, body, secs = slow.deliver(sandbox.notice(n))
    assert (status, body) == (200, OK) and secs < 2
    assert order_row(n)["recharge_status"] == "processing"
    row = wait_settled(n, 15)
    assert (row["payment_status"], row["recharge_status"], row["anomaly_reason"]) == ("paid", "success", None)
    assert kinds(n) == [("submit", "success")]
    assert [e["requestId"] for e in sandbox.log()] == [n]


@mysql_only
def test_a_worker_killed_after_the_answer_before_the_submit_is_recovered_once(
        settings_env, app, sandbox, ctx):
    """The operator the killed service talks to never answers (a socket that accepts and
    reads nothing): the order is claimed, WeChat has its answer, the submit never reaches
    the real operator. The sweep, on the same database and the real (sandbox) operator,
    finds the stuck claim, hears "never received" and sends it once."""
    hole = __import__("socket").socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(50)
    service = Service(settings_env, UNITEL_API_URL=f"http://127.0.0.1:{hole.getsockname()[1]}/unitel")
    try:
        buyer = service.login("latency-killed")
        n = service.paid_at_wechat(sandbox, buyer, "89320001")
        status, body, _ = service.deliver(sandbox.notice(n))
        assert (status, body) == (200, OK)
        wait_for(lambda: order_row(n)["recharge_status"] == "processing", 5)
        for pid in children(service.proc.pid):
            os.kill(pid, signal.SIGKILL)
    finally:
        service.close()
        hole.close()
    row = order_row(n)
    assert (row["payment_status"], row["recharge_status"], row["submit_count"]) == ("paid", "processing", 1)
    assert sandbox.log() == []
    age_claim(n)  # as if SWEEP_STUCK_SECONDS had passed since the claim
    run(sweep.run)
    assert order_row(n)["recharge_status"] == "success"
    assert [e["requestId"] for e in sandbox.log()] == [n]
    assert double_topups() == []


@mysql_only
def test_sigterm_mid_submit_lets_the_submit_finish(settings_env, app, sandbox, ctx):
    service = Service(settings_env, UNITEL_READ_TIMEOUT="10")
    try:
        buyer = service.login("latency-sigterm")
        n = service.paid_at_wechat(sandbox, buyer, "89330001")
        set_mode(sandbox, "slow", msisdn="89330001", delay=3)
        assert service.deliver(sandbox.notice(n))[:2] == (200, OK)
        wait_for(lambda: sandbox.submits_for(n), 5)  # at the operator, its answer 3 s away
        service.proc.send_signal(signal.SIGTERM)
        service.proc.wait(30)
    finally:
        service.close()
    row = order_row(n)
    assert (row["payment_status"], row["recharge_status"]) == ("paid", "success"), "the started submit finished"
    assert kinds(n) == [("submit", "success")]
    assert len(sandbox.submits_for(n)) == 1


# -- the breaker -------------------------------------------------------------------------------

@mysql_only
def test_the_breaker_opens_everywhere_half_opens_and_closes(settings_env, make_app, app, sandbox, ctx):
    service = Service(settings_env, BREAKER_FAILURES="3", BREAKER_COOLDOWN_SECONDS="3",
                      RECHARGE_THREADS="0")
    try:
        buyer = service.login("breaker-buyer")
        set_mode(sandbox, "5xx")  # a gateway failing in front of the operator
        failed = []
        for i in range(3):  # three outages in a row, on whichever workers answer
            n = service.paid_at_wechat(sandbox, buyer, f"8934000{i}")
            assert service.deliver(sandbox.notice(n))[:2] == (200, OK)
            wait_settled(n)
            failed.append(n)
        # Open: every worker refuses new orders and payments, with Retry-After.
        for _ in range(6):
            r = service.create_order(buyer, "89340009")
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "operator_unavailable"
            assert 1 <= int(r.headers["Retry-After"]) <= 3
        assert requests.get(f"{service.url}/health", timeout=5).json() == {
            "status": "ok", "database": "up", "operator": "down", "wechat": "open-api"}
        # The paid orders stay paid: nobody is refunded because of an outage.
        assert [order_row(n)["payment_status"] for n in failed] == ["paid"] * 3
        assert sandbox.refunds() == []

        time.sleep(3.2)  # the cooldown: half-open, orders are taken again
        set_mode(sandbox, "success")
        r = service.create_order(buyer, "89340010")
        assert r.status_code == 201, r.text
        assert requests.get(f"{service.url}/health", timeout=5).json()["operator"] == "up"
        # The sweep asks about the unclear ones: the operator answers, the breaker closes.
        sweeper = make_app(BREAKER_FAILURES="3", BREAKER_COOLDOWN_SECONDS="3", SWEEP_STUCK_SECONDS="0")
        with sweeper.app_context():
            sweep.run(services.current())
            assert breaker.state(services.current().settings)[0] == breaker.CLOSED
    finally:
        service.close()
    log = (Path(settings_env["LOG_DIR"]) / "combined.log").read_text(encoding="utf-8")
    assert log.count("event=breaker_open") >= 1 and "event=breaker_closed" in log
    for n in failed:  # 5xx: never reached the operator; "not found" allowed the one resubmit
        assert order_row(n)["recharge_status"] == "success"
    assert double_topups() == []


def test_while_open_a_paid_order_waits_unclaimed_and_the_sweep_delivers_it(make_app, app, sandbox, ctx):
    app = make_app(BREAKER_FAILURES="2", BREAKER_COOLDOWN_SECONDS="60")
    client = app.test_client()
    buyer, n = order_with_payment(client, "breaker-waits")
    with app.app_context():
        open_breaker(app)
    assert sandbox.pay(n, notify=False).status_code == 200
    notice = sandbox.notice(n)
    r = client.post(notice["path"], headers=notice["headers"], data=json.dumps(notice["body"]))
    assert (r.status_code, r.get_json()) == (200, OK)
    row = order_row(n)
    assert (row["payment_status"], row["recharge_status"], row["recharge_at"]) == ("paid", "pending", None)
    assert sandbox.log() == []
    # The sweep leaves it while the breaker is open...
    with app.app_context():
        age_paid(n)
        sweep.run(services.current())
    assert order_row(n)["recharge_status"] == "pending" and sandbox.log() == []
    # ...and delivers it once the breaker half-opens.
    with app.app_context():
        with db.engine.begin() as c:
            c.execute(sa.text("UPDATE operator_breakers SET opened_at = :t"), {"t": utcnow() - timedelta(seconds=61)})
        sweep.run(services.current())
        assert breaker.state(services.current().settings)[0] == breaker.CLOSED
    assert order_row(n)["recharge_status"] == "success"
    assert [e["requestId"] for e in sandbox.log()] == [n]
    assert sandbox.refunds() == []


def test_a_definite_refusal_does_not_count_and_a_success_resets_the_count(make_app, app, sandbox, ctx):
    app = make_app(BREAKER_FAILURES="2")
    from elife.clients.unitel import Answer
    with app.app_context():
        breaker.record(services.current().settings, Answer("unknown", "http_502", "", 502))
        breaker.record(services.current().settings, Answer("failed", "1001", "not in service", 200))  # the operator is there
        assert breaker.state(services.current().settings)[0] == breaker.CLOSED
        breaker.record(services.current().settings, Answer("unknown", "ReadTimeout", "", None))
        assert breaker.state(services.current().settings)[0] == breaker.CLOSED, "the refusal reset the count: one outage since"
        breaker.record(services.current().settings, Answer("unknown", "ConnectionError", "", None))
        assert breaker.state(services.current().settings)[0] == breaker.OPEN, "two outages in a row"
        breaker.record(services.current().settings, Answer("success", "0000", "", 200))
        assert breaker.state(services.current().settings)[0] == breaker.CLOSED
        breaker.record(services.current().settings, Answer("unknown", "7777", "processing", 200))  # an answer we do not know
        breaker.record(services.current().settings, Answer("unknown", "7777", "processing", 200))
        assert breaker.state(services.current().settings)[0] == breaker.CLOSED, "the operator answered: not an outage"


# -- orders expire -------------------------------------------------------------------------------

def test_an_expired_order_is_409_and_closed_by_the_sweep(make_app, app, sandbox, ctx):
    app = make_app(ORDER_TTL_SECONDS="7200")
    client = app.test_client()
    buyer, n = order_with_payment(client, "expiry-buyer")
    never_paid = client.post("/orders", json=SEED_ORDER, headers=buyer).get_json()["orderNumber"]
    age_created(n, 7201)
    age_created(never_paid, 7201)
    r = client.post("/payment/create", json={"orderNumber": n}, headers=buyer)
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "order_expired"
    with app.app_context():
        sweep.run(services.current())
    for number in (n, never_paid):
        row = order_row(number)
        assert (row["payment_status"], row["recharge_status"]) == ("closed", "pending")
        assert row["closed_at"] is not None
    assert client.get(f"/orders/{n}", headers=buyer).get_json()["paymentStatus"] == "closed"
    # Closed at WeChat too: the customer can no longer pay it.
    assert sandbox.pay(n).status_code == 409
    assert sandbox.log() == []


def test_an_expired_order_wechat_took_money_for_is_delivered_not_closed(make_app, app, sandbox, ctx):
    app = make_app(ORDER_TTL_SECONDS="7200", SWEEP_UNPAID_WINDOW_SECONDS="7200")
    client = app.test_client()
    buyer, n = order_with_payment(client, "expiry-paid")
    assert sandbox.pay(n, notify=False).status_code == 200  # paid; the notice lost
    # Older than the TTL, and than the lost-callback window: only the close can find it.
    age_created(n, 3 * 7200)
    with db.engine.begin() as c:
        c.execute(sa.update(Order).where(Order.order_number == n)
                  .values(payment_created_at=utcnow() - timedelta(seconds=3 * 7200)))
    with app.app_context():
        sweep.run(services.current())
    row = order_row(n)
    assert (row["payment_status"], row["recharge_status"], row["closed_at"]) == ("paid", "success", None)
    assert [e["requestId"] for e in sandbox.log()] == [n]
    # A paid order is never closed, however old.
    age_created(n, 10 * 7200)
    with app.app_context():
        sweep.run(services.current())
    assert order_row(n)["payment_status"] == "paid"


def test_a_notice_for_a_closed_order_wechat_was_paid_for_is_flagged_not_recharged(make_app, app, sandbox, ctx):
    app = make_app()
    client = app.test_client()
    buyer, n = order_with_payment(client, "closed-then-paid")
    assert sandbox.pay(n, notify=False).status_code == 200
    with db.engine.begin() as c:  # closed here as the customer paid there (the race the close guards)
        c.execute(sa.update(Order).where(Order.order_number == n)
                  .values(payment_status="closed", closed_at=utcnow()))
    notice = sandbox.notice(n)
    r = client.post(notice["path"], headers=notice["headers"], data=json.dumps(notice["body"]))
    assert (r.status_code, r.get_json()) == (200, OK)
    row = order_row(n)
    assert (row["payment_status"], row["recharge_status"], row["anomaly_reason"]) == (
        "closed", "pending", "paid_after_close")
    assert sandbox.log() == []


# -- helpers -------------------------------------------------------------------------------------

def order_with_payment(client, code):
    """A customer's order with its WeChat trade created (in-process)."""
    buyer = login_as(client, code)
    n = client.post("/orders", json=SEED_ORDER, headers=buyer).get_json()["orderNumber"]
    assert client.post("/payment/create", json={"orderNumber": n}, headers=buyer).status_code == 200
    return buyer, n


def login_as(client, code):
    r = client.post("/auth/login", json={"code": code})
    assert r.status_code == 200
    return {"Authorization": f"Bearer {r.get_json()['token']}"}


def open_breaker(app):
    from elife.clients.unitel import Answer
    for _ in range(app.config["SETTINGS"].BREAKER_FAILURES):
        breaker.record(services.current().settings, Answer("unknown", "http_502", "bad gateway", 502))
    assert breaker.state(services.current().settings)[0] == breaker.OPEN


def age_created(n, seconds):
    with db.engine.begin() as c:
        c.execute(sa.update(Order).where(Order.order_number == n)
                  .values(created_at=utcnow() - timedelta(seconds=seconds)))


def age_paid(n, seconds=3600):
    with db.engine.begin() as c:
        c.execute(sa.update(Order).where(Order.order_number == n)
                  .values(paid_at=utcnow() - timedelta(seconds=seconds)))
