"""GET /metrics (issue 17, part 4): Prometheus text behind a Bearer token (METRICS_TOKEN,
or ADMIN_TOKEN when unset); the counters the issue names move with what the service
does; under gunicorn one scrape sums every worker (prometheus_client's multiprocess
mode); the sweep's run summary reaches the scrape; the seed's fourth query is a gauge."""
import os
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from conftest import REPO, SEED_ORDER
from elife import services
from elife.extensions import db
from elife.timeutil import utcnow

TOKEN = {"Authorization": "Bearer test-admin-token"}
NAMES = ("elife_orders_created_total", "elife_callbacks_total", "elife_operator_requests_total",
         "elife_operator_request_seconds", "elife_recharge_seconds", "elife_refunds_total", "elife_breaker_open",
         "elife_sweep_last_run_timestamp_seconds", "elife_orders_pending_compensation")


def samples(text):
    """{(sample name, frozenset of labels): value}"""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(found, name, **labels):
    return found.get((name, frozenset(labels.items())), 0.0)


def scrape(client, headers=TOKEN):
    r = client.get("/metrics", headers=headers)
    assert r.status_code == 200, r.data[:300]
    assert r.mimetype == "text/plain"
    return samples(r.get_data(as_text=True))


def pay(client, customer, sandbox, phone="88888888", code="5000"):
    r = client.post("/orders", json={**SEED_ORDER, "phoneNumber": phone, "productCode": code}, headers=customer)
    n = r.get_json()["orderNumber"]
    assert client.post("/payment/create", json={"orderNumber": n}, headers=customer).status_code == 200
    assert sandbox.pay(n, notify=False).status_code == 200
    notice = sandbox.notice(n)
    assert client.post(notice["path"], json=notice["body"], headers=notice["headers"]).get_json()["errcode"] == 0
    return n


# -- who may scrape -------------------------------------------------------------------------------

def test_without_a_token_is_401(client):
    r = client.get("/metrics")
    assert r.status_code == 401 and r.get_json()["error"]["code"] == "missing_token"
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert b"elife_" not in r.data


@pytest.mark.parametrize("header", ["Bearer wrong", "Bearer test-admin-tokenx", "Bearer ", "Basic dGVzdA=="])
def test_a_wrong_token_is_403_or_401(client, header):
    r = client.get("/metrics", headers={"Authorization": header})
    assert r.status_code in (401, 403) and b"elife_" not in r.data
    if header.startswith("Bearer "):
        assert r.status_code == 403 and r.get_json()["error"]["code"] == "forbidden"


def test_metrics_token_when_set_replaces_the_admin_token(make_app, sandbox):
    c = make_app(METRICS_TOKEN="scrape-only-token").test_client()
    assert c.get("/metrics", headers=TOKEN).status_code == 403
    assert c.get("/metrics", headers={"Authorization": "Bearer scrape-only-token"}).status_code == 200
    assert c.get("/admin", headers={"Authorization": "Bearer scrape-only-token"}).status_code == 403


def test_every_named_metric_is_there_from_the_start(client):
    r = client.get("/metrics", headers=TOKEN)
    text = r.get_data(as_text=True)
    for name in NAMES:
        assert f"# TYPE {name} " in text or f"# TYPE {name.removesuffix('_total')} " in text, name
    assert value(samples(text), "elife_breaker_open") == 0


def test_the_breaker_gauge_says_open_while_it_is(client, ctx):
    from elife.clients.unitel import Answer
    from elife.fulfil import breaker
    for _ in range(client.application.config["SETTINGS"].BREAKER_FAILURES):
        breaker.record(services.current().settings, Answer("unknown", "http_502", "bad gateway", 502))
    text = client.get("/metrics", headers=TOKEN).get_data(as_text=True)
    assert value(samples(text), "elife_breaker_open") == 1


# -- the counters move with the service's work ------------------------------------------------------

def test_a_paid_order_and_a_failed_one_move_the_counters(client, customer, sandbox):
    before = scrape(client)
    pay(client, customer, sandbox)
    sandbox.mode("fail", "88000041")
    pay(client, customer, sandbox, phone="88000041")
    client.post("/payment/callback/ORD20260101000000000009", json={"returnCode": "SUCCESS"})  # no such order
    after = scrape(client)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("elife_orders_created_total") == 2
    assert moved("elife_callbacks_total", decision="paid") == 2
    assert moved("elife_callbacks_total", decision="unknown_order") == 1
    assert moved("elife_operator_requests_total", kind="submit", outcome="success") == 1
    assert moved("elife_operator_requests_total", kind="submit", outcome="failed") == 1
    assert moved("elife_operator_request_seconds_count", kind="submit") == 2
    assert moved("elife_recharge_seconds_count") == 1
    assert moved("elife_refunds_total", outcome="accepted") == 1
    assert moved("elife_refunds_total", outcome="refunded") == 1
    assert moved("elife_http_requests_total", endpoint="/orders", status="201") == 2


def test_pending_compensation_is_the_seeds_fourth_query(client, customer, ctx):
    r = client.post("/orders", json=SEED_ORDER, headers=customer)
    n = r.get_json()["orderNumber"]
    assert value(scrape(client), "elife_orders_pending_compensation") == 0
    with db.engine.begin() as c:  # paid 12 minutes ago, never claimed: the sweep is not keeping up
        c.execute(sa.text("UPDATE orders SET payment_status = 'paid', paid_at = :t WHERE order_number = :n"),
                  {"t": utcnow() - timedelta(minutes=12), "n": n})
    found = scrape(client)
    assert value(found, "elife_orders_pending_compensation") == 1
    assert 12 * 60 - 5 <= value(found, "elife_orders_pending_compensation_oldest_seconds") <= 12 * 60 + 60
    assert value(found, "elife_metrics_database_up") == 1


def test_the_sweeps_summary_reaches_the_scrape(app, client, customer, sandbox, ctx):
    from elife.fulfil import sweep
    r = client.post("/orders", json=SEED_ORDER, headers=customer)
    n = r.get_json()["orderNumber"]
    with db.engine.begin() as c:  # paid, its callback's recharge never happened
        c.execute(sa.text("UPDATE orders SET payment_status = 'paid', paid_at = :t WHERE order_number = :n"),
                  {"t": utcnow() - timedelta(minutes=10), "n": n})
    started = time.time()
    summary = sweep.run(services.current())
    assert summary.claimed == 1
    found = scrape(client)
    assert started <= value(found, "elife_sweep_last_run_timestamp_seconds") <= time.time()
    assert value(found, "elife_sweep_last_run_orders", result="claimed") == 1
    assert value(found, "elife_sweep_last_run_orders", result="settled") == 1
    assert value(found, "elife_sweep_last_run_operator_requests", kind="submit", outcome="success") == 1
    assert value(found, "elife_orders_pending_compensation") == 0


def test_a_scrape_while_the_database_is_down_still_serves_the_counters(make_app, sandbox, tmp_path):
    c = make_app(DATABASE_URL="mysql+pymysql://nobody@127.0.0.1:1/none", DB_MAX_RETRIES="1",
                 DB_RETRY_DELAY="1", LOG_DIR=str(tmp_path)).test_client()
    try:
        found = scrape(c)
    finally:
        make_app()  # the session's logging again
    assert value(found, "elife_metrics_database_up") == 0
    assert "elife_breaker_open" not in {name for name, _ in found}  # read from the database too
    assert "elife_orders_pending_compensation" not in {name for name, _ in found}


# -- under gunicorn: one scrape sums every worker ------------------------------------------------------

@pytest.mark.e2e
def test_one_scrape_sums_every_gunicorn_worker(live, settings_env, ports):
    from prometheus_client.multiprocess import MultiProcessCollector
    files_dir = Path(settings_env["METRICS_DIR"]) / f"workers-{ports['service']}"

    def scrape_live():
        r = requests.get(f"{live.url}/metrics", headers=TOKEN, timeout=10)
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
        return samples(r.text)

    def per_worker():
        out = {}
        for f in files_dir.glob("counter_*.db"):
            for m in MultiProcessCollector.merge([str(f)]):
                for s in m.samples:
                    if s.name == "elife_orders_created_total":
                        out[f.name] = s.value
        return out

    before, before_files = scrape_live(), per_worker()
    headers = live.login("metrics-workers")
    count, threads, errors = 24, [], []
    barrier = threading.Barrier(6)

    def create(i):
        with requests.Session() as s:
            if i < 6:
                barrier.wait(10)
            r = s.post(f"{live.url}/orders", headers=headers, timeout=20,
                       json={**SEED_ORDER, "phoneNumber": f"880{i:05d}"})
            if r.status_code != 201:
                errors.append(r.text)

    for batch in range(4):  # six at once, four times: the three workers all get some
        threads = [threading.Thread(target=create, args=(batch * 6 + i,)) for i in range(6)]
        barrier.reset()
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert not errors, errors
    after, after_files = scrape_live(), per_worker()
    moved = value(after, "elife_orders_created_total") - value(before, "elife_orders_created_total")
    assert moved == count
    # the sum is over several processes: each worker's own file holds its share
    shares = {f: after_files.get(f, 0) - before_files.get(f, 0) for f in after_files}
    busy = [f for f, n in shares.items() if n > 0]
    assert len(busy) >= 2, shares
    assert sum(shares.values()) == count
    assert value(after, "elife_http_requests_total", endpoint="/orders", status="201") - value(
        before, "elife_http_requests_total", endpoint="/orders", status="201") == count


@pytest.mark.e2e
def test_the_sweep_under_cron_reaches_the_live_scrape(live, settings_env):
    env = {**os.environ, **settings_env, "FLASK_APP": "wsgi"}
    started = time.time()
    out = subprocess.run([sys.executable, "-m", "flask", "elife", "sweep"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    r = requests.get(f"{live.url}/metrics", headers=TOKEN, timeout=10)
    assert started <= value(samples(r.text), "elife_sweep_last_run_timestamp_seconds") <= time.time()
