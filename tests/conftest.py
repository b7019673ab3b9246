"""Fixtures built from the real parts: the app factory, a real database (SQLite file, or
MariaDB when ELIFE_TEST_DATABASE_URL is set), the sandbox as a real HTTP server, and --
for end-to-end tests -- the service itself under gunicorn."""
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from flask.testing import FlaskClient

from elife import create_app
from elife.config import normalize_database_url
from elife.extensions import db
from elife.ops.seed import seed

REPO = Path(__file__).resolve().parent.parent
TEST_DB_URL = os.environ.get("ELIFE_TEST_DATABASE_URL", "").strip()
ON_MYSQL = bool(TEST_DB_URL)
# ELIFE_TEST_MYSQL_BRANCH=1 on MariaDB: the code takes the branches it takes on MySQL 8.0
# (DB_MYSQL_BRANCH; .ci/run runs the order, limit and sweep tests so).
MYSQL_BRANCH = ON_MYSQL and os.environ.get("ELIFE_TEST_MYSQL_BRANCH", "") not in ("", "0")

JOBS_TOKEN = "test-jobs-token-0123456789abcdef"  # 32: production apps of the tests take it too
mysql_only = pytest.mark.skipif(not ON_MYSQL, reason="MariaDB only: set ELIFE_TEST_DATABASE_URL")

# Tables in delete order (children first); alembic_version is never touched.
TABLES = ("notifications", "notification_consents", "notification_templates", "wechat_tokens",
          "job_locks", "admin_sessions", "product_changes", "reconciliation_breaks", "reconciliations", "operator_breakers",
          "rate_limits", "operator_price_lists", "idempotency_keys", "order_events", "operator_calls",
          "payment_notices", "orders", "exchange_rates", "products", "users")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=30, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {proc.returncode}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- the database --------------------------------------------------------------------------

def _server_and_name(url):
    u = sa.engine.make_url(url)
    return u.set(database=""), u.database


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    if not ON_MYSQL:
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'elife.db'}"
        return
    url = normalize_database_url(TEST_DB_URL)
    server, name = _server_and_name(url)
    if not re.fullmatch(r"[A-Za-z0-9_]+", name or ""):
        raise RuntimeError("ELIFE_TEST_DATABASE_URL must name a database (letters, digits, _)")
    engine = sa.create_engine(server)
    with engine.connect() as c:  # a database of our own, created and dropped here
        c.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        c.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    yield url
    with engine.connect() as c:
        c.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
    engine.dispose()


@pytest.fixture(scope="session")
def ports():
    return {"service": free_port(), "sandbox": free_port()}


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def settings_env(database_url, ports, log_dir):
    """Settings shared by the in-process app, the sandbox and the gunicorn service."""
    return {
        "ELIFE_ENV": "development",
        "DATABASE_URL": database_url,
        "PORT": str(ports["service"]),
        "SANDBOX_PORT": str(ports["sandbox"]),
        "SANDBOX_SERVICE_URL": f"http://127.0.0.1:{ports['service']}",
        "SANDBOX_STATE_FILE": str(log_dir / "sandbox-state.json"),  # never instance/ in the repo
        "LOG_DIR": str(log_dir),
        "METRICS_DIR": str(log_dir / "metrics"),
        "LOG_LEVEL": "info",
        "SECRET_KEY": "test-secret",
        "ADMIN_TOKEN": "test-admin-token",
        "UNITEL_READ_TIMEOUT": "1.0",
        "WECHAT_TIMEOUT": "1.0",
        "DB_MAX_RETRIES": "3",
        "DB_RETRY_DELAY": "50",
        "SWEEP_GRACE_SECONDS": "60",
        "SWEEP_STUCK_SECONDS": "300",
        # Limits have their own tests; elsewhere a test may create many orders quickly.
        "LIMIT_ORDERS_PER_MINUTE": "100000",
        "LIMIT_ORDERS_PER_DAY": "100000",
        "LIMIT_LOGINS_PER_MINUTE": "100000",
        "LIMIT_PAYMENTS_PER_ORDER_HOUR": "100000",
        "LIMIT_ADMIN_FAILURES_PER_MINUTE": "100000",
        "LIMIT_NOTICES_PER_ORDER_PER_HOUR": "100000",
        "DB_MYSQL_BRANCH": "true" if MYSQL_BRANCH else "false",
        "JOBS_ENABLED": "true",
        "JOBS_TOKEN": JOBS_TOKEN,
    }


@pytest.fixture(scope="session")
def migrated(settings_env):
    from flask_migrate import upgrade
    app = create_app(dict(settings_env))
    with app.app_context():
        upgrade()
        db.engine.dispose()
    return True


# -- the sandbox ---------------------------------------------------------------------------

class Sandbox:
    def __init__(self, url):
        self.url = url

    def reset(self):
        requests.post(f"{self.url}/_reset", timeout=5).raise_for_status()

    def mode(self, mode, msisdn=None):
        body = {"mode": mode, **({"msisdn": msisdn} if msisdn else {})}
        requests.post(f"{self.url}/unitel/_mode", json=body, timeout=5).raise_for_status()

    def log(self):
        return requests.get(f"{self.url}/unitel/_log", timeout=5).json()

    def calls(self):
        """Every call the fake Unitel received: path, auth, body, the status it answered."""
        return requests.get(f"{self.url}/unitel/_calls", timeout=5).json()

    def expire_tokens(self):
        requests.post(f"{self.url}/unitel/_expire_tokens", timeout=5).raise_for_status()

    def price(self, code, price, msisdn=None, type=None):
        body = {"code": code, "price": price, **({"msisdn": msisdn} if msisdn else {}),
                **({"type": type} if type else {})}
        requests.post(f"{self.url}/unitel/_price", json=body, timeout=5).raise_for_status()

    def servicetype_mode(self, mode):
        requests.post(f"{self.url}/unitel/_mode", json={"mode": mode, "call": "servicetype"},
                      timeout=5).raise_for_status()

    def submits_for(self, order_number):
        return [e for e in self.log() if e["requestId"] == order_number]

    def notice(self, order_number):
        r = requests.get(f"{self.url}/wechat/_notice/{order_number}", timeout=5)
        r.raise_for_status()
        return r.json()

    def pay(self, order_number, notify=True):
        return requests.post(f"{self.url}/wechat/_pay/{order_number}", json={"notify": notify}, timeout=30)

    def trade(self, order_number, total_fee):
        """Create the WeChat trade for `order_number` directly, as our unified order would
        but for `total_fee`: a payment WeChat will confirm for another amount than the
        order's (the one way a notice can flag an order)."""
        r = requests.post(f"{self.url}/wechat/_/pay/unifiedorder", timeout=5, json={
            "out_trade_no": order_number, "total_fee": total_fee, "openid": "o-someone",
            "attach": f'{{"orderNumber":"{order_number}"}}', "sub_mch_id": "1900000000",
            "container": {"service": "elife-backend", "path": f"/payment/callback/{order_number}"}})
        assert r.json()["respdata"]["result_code"] == "SUCCESS", r.text

    def refunds(self):
        return requests.get(f"{self.url}/wechat/_refunds", timeout=5).json()

    def wechat_down(self, *calls):
        requests.post(f"{self.url}/wechat/_down", json={"calls": list(calls)}, timeout=5).raise_for_status()

    def refund_mode(self, mode):
        requests.post(f"{self.url}/wechat/_refund_mode", json={"mode": mode}, timeout=5).raise_for_status()

    def refund_settle(self, order_number, result="SUCCESS", notify=True):
        """WeChat settles the trade's PROCESSING refund and delivers its notice (the reply)."""
        return requests.post(f"{self.url}/wechat/_refund_settle/{order_number}",
                             json={"result": result, "notify": notify}, timeout=30)

    def notices_delivered(self, timeout=5):
        """Wait until every refund notice the sandbox sends on its own (refund mode
        success) has been delivered or has failed to be: nothing lands later."""
        deadline = time.monotonic() + timeout
        while any(r.get("status") == "SUCCESS" and r.get("path") and r.get("notified") is None
                  for r in self.refunds()):
            assert time.monotonic() < deadline, "a refund notice was never delivered"
            time.sleep(0.05)

    def bill_extra(self, **row):
        r = requests.post(f"{self.url}/wechat/_bill_extra", json=row, timeout=5)
        r.raise_for_status()
        return r.json()


@pytest.fixture(scope="session")
def sandbox_server(settings_env, ports):
    env = {**os.environ, **settings_env}
    proc = subprocess.Popen([sys.executable, "-m", "elife.sandbox"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{ports['sandbox']}"
    wait_http(f"{url}/_health", proc=proc)
    yield Sandbox(url)
    stop(proc)


@pytest.fixture
def sandbox(sandbox_server):
    sandbox_server.reset()
    yield sandbox_server
    # Again at the end: notices the sandbox would still deliver (WeChat's refund notice
    # follows its answer by a moment) are dropped, not delivered into the next test.
    sandbox_server.reset()


# -- the app -------------------------------------------------------------------------------

def clean_database():
    with db.engine.begin() as c:
        for t in TABLES:
            c.execute(sa.text(f"DELETE FROM {t}"))


class ServerLikeClient(FlaskClient):
    """A test client that closes each response once it is read, as a WSGI server does
    after sending it: work an endpoint runs after its answer (the top-up a payment
    notice leads to) has run when the call returns."""

    def open(self, *args, **kwargs):
        kwargs.setdefault("buffered", True)
        return super().open(*args, **kwargs)


@pytest.fixture
def make_app(migrated, settings_env):
    """Build an app with extra settings; the database is emptied and seeded once."""
    apps = []

    def _make(**overrides):
        # In-process apps top up in the thread that answered (RECHARGE_THREADS=0), so a
        # test's call returns with the top-up done; gunicorn in the e2e tests uses the pool.
        app = create_app({**settings_env, "RECHARGE_THREADS": "0",
                          **{k: str(v) for k, v in overrides.items()}})
        app.test_client_class = ServerLikeClient
        apps.append(app)
        return app

    yield _make
    for app in apps:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def app(make_app, sandbox):
    app = make_app()
    with app.app_context():
        clean_database()
        seed()
    return app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield


# -- customers -----------------------------------------------------------------------------

def login(client, code="customer-a"):
    r = client.post("/auth/login", json={"code": code})
    assert r.status_code == 200, r.get_json()
    return {"Authorization": f"Bearer {r.get_json()['token']}"}


SEED_ORDER = {"phoneNumber": "88888888", "productOperator": "UNITEL", "rechargeType": "VOICE",
              "productCode": "5000"}


@pytest.fixture
def customer(client):
    return login(client, "customer-a")


@pytest.fixture
def order(client, customer):
    r = client.post("/orders", json=SEED_ORDER, headers=customer)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def row_counts():
    with db.engine.connect() as c:
        return {t: c.execute(sa.text(f"SELECT COUNT(*) FROM {t}")).scalar() for t in TABLES}


def order_row(order_number):
    with db.engine.connect() as c:
        return c.execute(sa.text("SELECT * FROM orders WHERE order_number = :n"),
                         {"n": order_number}).mappings().one()


def wait_settled(order_number, seconds=10, refunding=False):
    """The order's row once its recharge has settled -- success, unknown (and flagged),
    or failed and refunded (or, with `refunding`, the refund accepted and not yet
    confirmed). WeChat's notice is answered before the top-up runs, so a test that paid
    through the live service waits for it, as the customer's app polls."""
    deadline = time.monotonic() + seconds
    refund_states = ("refunded", "refunding") if refunding else ("refunded",)
    while True:
        row = order_row(order_number)
        if row["recharge_status"] == "success" or (
                row["recharge_status"] == "unknown" and row["anomaly_reason"] is not None) or (
                row["recharge_status"] == "failed" and row["payment_status"] in refund_states):
            return row
        if time.monotonic() > deadline:
            raise AssertionError(f"{order_number} not settled within {seconds}s: "
                                 f"{row['payment_status']}/{row['recharge_status']}")
        time.sleep(0.02)


# -- the service under gunicorn ------------------------------------------------------------

class Live:
    def __init__(self, url, log_dir):
        self.url = url
        self.log_dir = log_dir

    def login(self, code="live-customer"):
        r = requests.post(f"{self.url}/auth/login", json={"code": code}, timeout=10)
        r.raise_for_status()
        return {"Authorization": f"Bearer {r.json()['token']}"}

    def new_paid_ready_order(self, headers, phone="88888888", code="5000"):
        """An order with its WeChat trade created, ready to be paid in the sandbox."""
        r = requests.post(f"{self.url}/orders", headers=headers, timeout=10, json={
            **SEED_ORDER, "phoneNumber": phone, "productCode": code})
        assert r.status_code == 201, r.text
        n = r.json()["orderNumber"]
        r = requests.post(f"{self.url}/payment/create", headers=headers, json={"orderNumber": n}, timeout=10)
        assert r.status_code == 200, r.text
        return n

    def get_order(self, headers, n):
        return requests.get(f"{self.url}/orders/{n}", headers=headers, timeout=10).json()


@pytest.fixture(scope="session")
def live_server(migrated, settings_env, ports, sandbox_server):
    env = {**os.environ, **settings_env, "WEB_CONCURRENCY": "3", "GUNICORN_ACCESS_LOG": "",
           "PYTHONUNBUFFERED": "1"}
    log = open(Path(settings_env["LOG_DIR"]) / "gunicorn.out", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "wsgi:app", "-c", "gunicorn.conf.py"],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{ports['service']}"
    wait_http(f"{url}/health", proc=proc)
    yield Live(url, Path(settings_env["LOG_DIR"]))
    stop(proc)
    log.close()


@pytest.fixture
def live(live_server, app):
    """The gunicorn service on a clean, seeded database and a reset sandbox."""
    yield live_server
    # Top-ups the service runs after its answers: let them end before the next test
    # empties the tables under them (a test that leaves one processing on purpose waits 5 s).
    deadline = time.monotonic() + 5
    with app.app_context():
        while time.monotonic() < deadline:
            with db.engine.connect() as c:
                if not c.execute(sa.text("SELECT COUNT(*) FROM orders WHERE recharge_status = 'processing'")).scalar():
                    break
            time.sleep(0.05)
