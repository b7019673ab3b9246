"""The timed jobs over HTTP (POST /jobs/*), for Cloud Hosting's timed triggers: who may
call them, the summaries they answer, one at a time across instances, the sweep's time
budget, and an instance killed mid-job."""
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

from conftest import JOBS_TOKEN, REPO, free_port, order_row, wait_http
from elife.extensions import db
from elife.fulfil import reconcile
from elife.models import JobLock, Order, PaymentNotice
from elife.timeutil import utcnow
from test_sweep import _bulk_due_orders

RIGHT = {"Authorization": f"Bearer {JOBS_TOKEN}"}


def _submits(sandbox):
    per_order = {}
    for e in sandbox.log():
        per_order[e["requestId"]] = per_order.get(e["requestId"], 0) + 1
    return per_order


# -- who may call them ------------------------------------------------------------------------

def test_no_token_is_401_a_wrong_one_403_and_counted_with_the_admin_failures(make_app, app, sandbox, log_dir):
    client = make_app(LIMIT_ADMIN_FAILURES_PER_MINUTE=3).test_client()
    for path in ("/jobs/sweep", "/jobs/reconcile", "/jobs/purge"):
        r = client.post(path)
        assert r.status_code == 401 and r.get_json()["error"]["code"] == "missing_token", path
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.post("/jobs/sweep", headers={"Authorization": "Basic " + JOBS_TOKEN}).status_code == 401
    for wrong in (JOBS_TOKEN + "x", JOBS_TOKEN[:-1], "test-admin-token"):
        r = client.post("/jobs/sweep", headers={"Authorization": f"Bearer {wrong}"})
        assert r.status_code == 403 and r.get_json()["error"]["code"] == "forbidden"
    # the fourth wrong token is past the admin failures' limit of the address: refused,
    # and so is the right one for the rest of the minute (it is guessing)
    r = client.post("/jobs/sweep", headers={"Authorization": "Bearer guess"})
    assert r.status_code == 429 and "Retry-After" in r.headers
    assert client.post("/jobs/sweep", headers=RIGHT).status_code == 429
    assert (log_dir / "combined.log").read_text().count("event=admin_auth_failed via=jobs") >= 4


def test_the_right_token_runs_the_sweep_and_answers_its_summary(app, client, sandbox, ctx, settings_env):
    [n] = _bulk_due_orders(1)
    r = client.post("/jobs/sweep", headers=RIGHT)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["found"] == 1 and body["claimed"] == 1 and body["settled"] == 1 and body["more"] is False
    assert body["bySelection"]["paid_unclaimed"] == 1
    assert order_row(n)["recharge_status"] == "success"
    assert _submits(sandbox) == {n: 1}
    # the same summary as `flask elife sweep --json`
    out = subprocess.run([sys.executable, "-m", "flask", "elife", "sweep", "--json"], cwd=REPO, check=True,
                         env={**os.environ, **settings_env, "FLASK_APP": "wsgi"}, capture_output=True, text=True)
    assert set(json.loads(out.stdout)) == set(body)


def test_jobs_are_off_unless_enabled(make_app, app, sandbox):
    client = make_app(JOBS_ENABLED="false").test_client()
    r = client.post("/jobs/sweep", headers=RIGHT)
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "jobs_disabled"


def test_production_refuses_a_weak_or_missing_jobs_token_while_the_jobs_are_on():
    from elife.config import ConfigError, load_settings
    base = {"ELIFE_ENV": "production", "DATABASE_URL": "sqlite:///x.db", "SECRET_KEY": "k" * 40,
            "ADMIN_TOKEN": "a" * 40, "WECHAT_APPID": "wx1", "WECHAT_MCH_ID": "1", "WECHAT_ENV_ID": "e",
            "UNITEL_API_URL": "http://u", "UNITEL_USERNAME": "u", "UNITEL_PASSWORD": "p"}
    load_settings(base, environ={}).validate()  # off: no token needed
    for token, said in (("", "missing required settings: JOBS_TOKEN"), ("dev-jobs-token", "development default"),
                        ("short", "shorter than 32")):
        with pytest.raises(ConfigError, match=said):
            load_settings({**base, "JOBS_ENABLED": "true", "JOBS_TOKEN": token}, environ={}).validate()
    load_settings({**base, "JOBS_ENABLED": "true", "JOBS_TOKEN": "j" * 32}, environ={}).validate()
    with pytest.raises(ConfigError, match="JOB_TIME_BUDGET_SECONDS"):  # no room for one top-up
        load_settings({**base, "JOBS_ENABLED": "true", "JOBS_TOKEN": "j" * 32, "JOB_TIME_BUDGET_SECONDS": "30"},
                      environ={}).validate()


def test_require_wx_source_asks_for_the_platforms_header_too(make_app, app, sandbox):
    client = make_app(REQUIRE_WX_SOURCE="true").test_client()
    r = client.post("/jobs/purge", headers=RIGHT)
    assert r.status_code == 403 and r.get_json()["error"]["code"] == "not_from_platform"
    assert client.post("/jobs/purge", headers={**RIGHT, "X-WX-SOURCE": "wx_cron"}).status_code == 200


# -- the reconciliation and the purge ---------------------------------------------------------

def test_reconcile_answers_like_reconcile_json_and_503_while_the_bill_is_not_made(client, sandbox, ctx):
    today = reconcile.china_today()
    r = client.post("/jobs/reconcile", headers=RIGHT, json={"date": f"{today:%Y%m%d}"})
    assert r.status_code == 200, r.get_json()
    assert set(r.get_json()) == {"date", "status", "wechat", "ours", "breaks", "recovered"}
    assert r.get_json()["date"] == f"{today:%Y%m%d}"
    # a stranger's trade on today's bill: a break, still a 200 that says so
    sandbox.bill_extra(date=f"{today:%Y%m%d}", outTradeNo="STRANGER0000000001", totalFee=777)
    r = client.post("/jobs/reconcile", headers=RIGHT, json={"date": f"{today:%Y%m%d}"})
    assert r.status_code == 200 and r.get_json()["status"] == "breaks"
    # no body: yesterday, China time
    r = client.post("/jobs/reconcile", headers=RIGHT)
    assert r.status_code == 200 and r.get_json()["date"] == f"{reconcile.default_day():%Y%m%d}"
    # tomorrow's bill is not made yet: try again later
    r = client.post("/jobs/reconcile", headers=RIGHT, json={"date": f"{today + timedelta(days=1):%Y%m%d}"})
    assert r.status_code == 503 and r.get_json()["error"]["code"] == "bill_not_ready"
    assert int(r.headers["Retry-After"]) > 0


@pytest.mark.parametrize("body, code", [
    (b"{", "malformed_json"), (b"[]", "body_not_object"), (b'{"date": 20260118}', "invalid_field"),
    (b'{"date": "2026-01-18"}', "invalid_field"), (b'{"date": "20261399"}', "invalid_field"),
    (b'{"date": ""}', "invalid_field"), (b'{"date": "' + b"9" * 5000 + b'"}', "invalid_field"),
])
def test_reconcile_refuses_a_bad_date_and_changes_nothing(client, ctx, body, code):
    r = client.post("/jobs/reconcile", headers={**RIGHT, "Content-Type": "application/json"}, data=body)
    assert r.status_code == 400 and r.get_json()["error"]["code"] == code, r.get_json()
    assert db.session.execute(sa.text("SELECT COUNT(*) FROM reconciliations")).scalar() == 0


def test_purge_drops_old_notices(client, ctx):
    old, new = utcnow() - timedelta(days=400), utcnow()
    db.session.add_all([PaymentNotice(order_number=f"ORDOLD{i}", received_at=old, body="{}", decision="rejected")
                        for i in range(3)] + [PaymentNotice(order_number="ORDNEW", received_at=new, body="{}",
                                                            decision="rejected")])
    db.session.commit()
    r = client.post("/jobs/purge", headers=RIGHT)
    assert r.status_code == 200 and r.get_json()["purged"] == 3 and r.get_json()["more"] is False
    assert db.session.execute(sa.text("SELECT COUNT(*) FROM payment_notices")).scalar() == 1


# -- one at a time, within the budget -----------------------------------------------------------

@pytest.mark.e2e
def test_two_calls_at_once_one_runs_the_other_is_409(live, sandbox, app):
    with app.app_context():
        numbers = _bulk_due_orders(2)
    sandbox.mode("slow")  # each top-up takes a third of a second: the first call holds the lease
    answers = {}

    def call(i):
        answers[i] = requests.post(f"{live.url}/jobs/sweep", headers=RIGHT, timeout=30)

    first = threading.Thread(target=call, args=(0,))
    first.start()
    deadline = time.monotonic() + 10
    while not sandbox.log() and time.monotonic() < deadline:  # the first is at work
        time.sleep(0.02)
    call(1)
    first.join()
    assert sorted(a.status_code for a in answers.values()) == [200, 409], [a.text for a in answers.values()]
    refused = next(a for a in answers.values() if a.status_code == 409)
    assert refused.json()["error"]["code"] == "job_running" and int(refused.headers["Retry-After"]) >= 1
    ran = next(a for a in answers.values() if a.status_code == 200).json()
    assert ran["settled"] == 2
    assert _submits(sandbox) == {n: 1 for n in numbers}
    # the lease was given back: the next call runs
    assert requests.post(f"{live.url}/jobs/sweep", headers=RIGHT, timeout=30).status_code == 200


def test_a_sweep_over_more_work_than_its_budget_says_more_and_the_next_call_finishes(make_app, app, sandbox):
    # 3 s budget; the operator's connect and read timeouts are 2 s: a second in which rows
    # may start, each top-up taking a fifth of a second
    jobs_app = make_app(JOB_TIME_BUDGET_SECONDS=3)
    client = jobs_app.test_client()
    with jobs_app.app_context():
        numbers = _bulk_due_orders(12)
    requests.post(f"{sandbox.url}/unitel/_mode", json={"mode": "slow", "delay": 0.2}, timeout=5).raise_for_status()
    answers = []
    for _ in range(6):
        started = time.monotonic()
        r = client.post("/jobs/sweep", headers=RIGHT)
        assert r.status_code == 200, r.get_json()
        assert time.monotonic() - started < 3 + 1  # within the budget (and a margin for the test)
        answers.append(r.get_json())
        if not r.get_json()["more"]:
            break
    assert answers[0]["more"] is True and 0 < answers[0]["settled"] < len(numbers)
    assert answers[-1]["more"] is False and len(answers) <= 4
    assert sum(a["settled"] for a in answers) == len(numbers)
    with jobs_app.app_context():
        assert {order_row(n)["recharge_status"] for n in numbers} == {"success"}
    assert _submits(sandbox) == {n: 1 for n in numbers}  # every order settled once


# -- an instance killed mid-job -------------------------------------------------------------------

def _service(settings_env, port, log_path, **extra):
    env = {**os.environ, **settings_env, "PORT": str(port), "WEB_CONCURRENCY": "1", "GUNICORN_ACCESS_LOG": "",
           "PYTHONUNBUFFERED": "1", **{k: str(v) for k, v in extra.items()}}
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "wsgi:app", "-c", "gunicorn.conf.py"], cwd=REPO,
                            env=env, stdout=open(log_path, "ab"), stderr=subprocess.STDOUT, start_new_session=True)
    wait_http(f"http://127.0.0.1:{port}/health", proc=proc)
    return proc


@pytest.mark.e2e
def test_an_instance_killed_mid_job_loses_nothing_and_the_next_call_settles(app, ctx, sandbox, settings_env,
                                                                            tmp_path):
    numbers = _bulk_due_orders(6)
    sandbox.mode("slow")
    port = free_port()
    extra = dict(JOB_TIME_BUDGET_SECONDS=4, SWEEP_STUCK_SECONDS=0)  # lease: 4 s and the margin
    proc = _service(settings_env, port, tmp_path / "service.log", **extra)
    url = f"http://127.0.0.1:{port}"
    errors = []

    def call():
        try:
            requests.post(f"{url}/jobs/sweep", headers=RIGHT, timeout=30)
        except requests.RequestException as exc:
            errors.append(exc)

    t = threading.Thread(target=call)
    t.start()
    deadline = time.monotonic() + 10
    while len(sandbox.log()) < 2 and time.monotonic() < deadline:  # mid-job: a top-up in flight
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the instance is gone, its lease is not given back
    proc.wait()
    t.join()
    assert errors, "the killed call had no answer"
    sandbox.mode("success")

    proc = _service(settings_env, port, tmp_path / "service.log", **extra)
    try:
        r = requests.post(f"{url}/jobs/sweep", headers=RIGHT, timeout=30)
        assert r.status_code == 409  # the dead instance's lease, until it ends
        until = db.session.execute(sa.select(JobLock.expires_at).where(JobLock.name == "sweep")).scalar()
        db.session.commit()
        time.sleep(max(0.0, (until - utcnow()).total_seconds()) + 0.5)
        for _ in range(5):
            r = requests.post(f"{url}/jobs/sweep", headers=RIGHT, timeout=30)
            assert r.status_code == 200, r.text
            if not r.json()["more"]:
                break
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
    rows = dict(db.session.execute(sa.select(Order.order_number, Order.recharge_status)
                                   .where(Order.order_number.in_(numbers))).all())
    db.session.commit()
    assert set(rows.values()) == {"success"}, rows
    assert _submits(sandbox) == {n: 1 for n in numbers}  # the one in flight was asked about, not sent again


# -- the open API, proven live ------------------------------------------------------------------

def _production(settings_env, sandbox, **over):
    return {**settings_env, "ELIFE_ENV": "production", "SECRET_KEY": "s" * 40, "ADMIN_TOKEN": "a" * 40,
            "JOBS_TOKEN": "j" * 40, "WECHAT_API_BASE": f"{sandbox.url}/wechat", "WECHAT_APPID": "wxsandbox000000000",
            "WECHAT_MCH_ID": "1900000000", "WECHAT_ENV_ID": "prod-elife", "UNITEL_API_URL": f"{sandbox.url}/unitel",
            "UNITEL_USERNAME": "sandbox", "UNITEL_PASSWORD": "sandbox", **over}


def test_inside_cloud_hosting_an_answer_without_openapi_seqid_is_logged_with_what_to_switch_on(
        make_app, app, sandbox, settings_env, log_dir):
    from elife import services
    from elife.clients.wechat import WeChatRejected

    def first_call(**over):
        with make_app(**_production(settings_env, sandbox, **over)).app_context():
            try:
                services.current().pay.query_order("ORD20260101000000000000")
            except WeChatRejected:
                pass  # no such trade: only the answer's header matters here
        return (log_dir / "combined.log").read_text(encoding="utf-8")

    before = (log_dir / "combined.log").read_text(encoding="utf-8").count("event=openapi_not_enabled")
    requests.post(f"{sandbox.url}/wechat/_openapi", json={"seqid": False}, timeout=5).raise_for_status()
    assert first_call().count("event=openapi_not_enabled") == before  # not inside Cloud Hosting: quiet
    text = first_call(CBR_ENV_ID="prod-elife")
    assert text.count("event=openapi_not_enabled") == before + 1
    line = [x for x in text.splitlines() if "event=openapi_not_enabled" in x][-1]
    assert "ERROR" in line and "开放接口服务" in line and "new version" in line
    requests.post(f"{sandbox.url}/wechat/_openapi", json={"seqid": True}, timeout=5).raise_for_status()
    text = first_call(CBR_ENV_ID="prod-elife")
    assert text.count("event=openapi_not_enabled") == before + 1 and "event=openapi_live" in text


@pytest.mark.e2e
def test_health_and_the_start_say_which_wechat_path(live, log_dir):
    assert requests.get(f"{live.url}/health", timeout=10).json()["wechat"] == "open-api"
    assert "event=wechat_path path=open-api" in (log_dir / "combined.log").read_text(encoding="utf-8")
