"""The compensation sweep: each selection, concurrency, interruption, keyset paging,
and the crontab line run as cron would."""
import os
import re
import signal
import subprocess
import sys
import time
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from conftest import REPO, free_port, mysql_only, order_row
from elife import services
from elife.fulfil import sweep
from elife.extensions import db
from elife.models import Order, User
from elife.timeutil import utcnow

LONG_AGO = timedelta(minutes=10)


def _set(n, **values):
    db.session.execute(sa.update(Order).where(Order.order_number == n).values(**values))
    db.session.commit()


def _paid_order(client, customer, sandbox, notify=False):
    """An order paid at WeChat whose callback never arrived (the sandbox paid it silently)."""
    from conftest import SEED_ORDER
    n = client.post("/orders", json=SEED_ORDER, headers=customer).get_json()["orderNumber"]
    assert client.post("/payment/create", json={"orderNumber": n}, headers=customer).status_code == 200
    assert sandbox.pay(n, notify=notify).status_code == 200
    return n


def _bulk_due_orders(count, phone="88000000"):
    """`count` paid, unclaimed orders, paid 10 minutes ago (a crash after paid, before claim)."""
    user = User(openid=f"bulk-{time.time_ns()}")
    db.session.add(user)
    db.session.flush()
    paid = utcnow() - LONG_AGO
    numbers = []
    for i in range(count):
        n = f"ORD{time.time_ns()}{i:04d}"[:32]
        numbers.append(n)
        db.session.add(Order(order_number=n, user_id=user.id, phone_number=f"88{i:06d}",
                             product_operator="UNITEL", recharge_type="VOICE", product_code="5000",
                             product_price_tg=5000, product_price_rmb=Decimal("10.50"), total_fee=1050,
                             exchange_rate=Decimal("0.0021"), payment_status="paid",
                             recharge_status="pending", paid_at=paid, created_at=paid, updated_at=paid))
    db.session.commit()
    return numbers


def test_paid_unclaimed_order_is_recharged_once(app, ctx, sandbox):
    [n] = _bulk_due_orders(1)
    s = sweep.run(services.current())
    assert order_row(n)["recharge_status"] == "success"
    assert len(sandbox.submits_for(n)) == 1
    assert (s.found, s.claimed, s.settled) == (1, 1, 1)
    s2 = sweep.run(services.current())
    assert s2.found == 0 and len(sandbox.submits_for(n)) == 1


def test_paid_order_inside_grace_is_left_to_its_callback(app, ctx, sandbox):
    [n] = _bulk_due_orders(1)
    _set(n, paid_at=utcnow())
    assert sweep.run(services.current()).found == 0
    assert order_row(n)["recharge_status"] == "pending" and sandbox.submits_for(n) == []


def test_lost_callback_is_found_paid_and_recharged_once(app, ctx, client, customer, sandbox):
    n = _paid_order(client, customer, sandbox, notify=False)
    assert order_row(n)["payment_status"] == "unpaid"
    _set(n, payment_created_at=utcnow() - LONG_AGO)
    s = sweep.run(services.current())
    row = order_row(n)
    assert (row["payment_status"], row["recharge_status"]) == ("paid", "success")
    assert row["transaction_id"]
    assert len(sandbox.submits_for(n)) == 1
    assert s.claimed == 1
    sweep.run(services.current())
    assert len(sandbox.submits_for(n)) == 1


def test_unpaid_order_stays_unpaid(app, ctx, client, customer, sandbox):
    from conftest import SEED_ORDER
    n = client.post("/orders", json=SEED_ORDER, headers=customer).get_json()["orderNumber"]
    client.post("/payment/create", json={"orderNumber": n}, headers=customer)
    _set(n, payment_created_at=utcnow() - LONG_AGO)
    s = sweep.run(services.current())
    assert order_row(n)["payment_status"] == "unpaid"
    assert s.skipped == 1 and sandbox.submits_for(n) == []


def test_unknown_order_is_settled_by_the_status_query(app, ctx, client, customer, sandbox):
    sandbox.mode("drop")
    n = _paid_order(client, customer, sandbox, notify=False)
    notice = sandbox.notice(n)
    r = client.post(notice["path"], json=notice["body"], headers=notice["headers"])
    assert r.get_json()["errcode"] == 0
    assert order_row(n)["recharge_status"] == "unknown"
    sandbox.mode("success")
    assert sweep.run(services.current()).found == 0  # unclear orders wait SWEEP_STUCK_SECONDS after the claim
    _set(n, recharge_at=utcnow() - LONG_AGO)
    s = sweep.run(services.current())
    row = order_row(n)
    assert row["recharge_status"] == "success" and row["anomaly_reason"] is None
    assert len(sandbox.submits_for(n)) == 1  # settled by asking, not by sending again
    assert s.settled == 1 and s.claimed == 0


def test_stuck_processing_never_received_is_resubmitted_once(make_app, app, sandbox):
    app = make_app(SWEEP_STUCK_SECONDS=60)
    with app.app_context():
        [n] = _bulk_due_orders(1)
        # A worker claimed it and died before its request left: the operator never saw it.
        _set(n, recharge_status="processing", recharge_at=utcnow() - LONG_AGO, submit_count=1, version=1)
        s = sweep.run(services.current())
        row = order_row(n)
        assert row["recharge_status"] == "success" and row["submit_count"] == 2
        assert len(sandbox.submits_for(n)) == 1 and s.claimed == 1
        kinds = [k for (k,) in db.session.execute(sa.text(
            "SELECT kind FROM operator_calls WHERE order_number=:n ORDER BY id"), {"n": n})]
        assert kinds == ["status", "resubmit"]


def test_processing_younger_than_stuck_is_left_alone(app, ctx, sandbox):
    [n] = _bulk_due_orders(1)
    _set(n, recharge_status="processing", recharge_at=utcnow(), submit_count=1, version=1)
    assert sweep.run(services.current()).found == 0
    assert order_row(n)["recharge_status"] == "processing"


def test_failed_refund_is_retried_by_the_sweep(app, ctx, client, customer, sandbox):
    sandbox.mode("fail")
    sandbox.wechat_down("refund")
    n = _paid_order(client, customer, sandbox, notify=False)
    notice = sandbox.notice(n)
    client.post(notice["path"], json=notice["body"], headers=notice["headers"])
    row = order_row(n)
    assert (row["payment_status"], row["recharge_status"], row["anomaly_reason"]) == ("paid", "failed", "refund_failed")
    sandbox.wechat_down()
    sweep.run(services.current())
    row = order_row(n)
    assert row["payment_status"] == "refunded" and row["anomaly_reason"] is None
    assert len(sandbox.refunds()) == 1 and len(sandbox.submits_for(n)) == 1


def test_keyset_paging_does_not_skip_rows_that_the_seed_offset_loop_skips(make_app, app, sandbox):
    """The seed's OFFSET loop: rows leave the result set as they are processed, so each
    next OFFSET page jumps over rows never seen. Reproduced, then the sweep shown right."""
    app = make_app(SWEEP_BATCH=10)
    with app.app_context():
        numbers = _bulk_due_orders(25)
        where = sweep.selections(utcnow(), app.config["SETTINGS"])[0][1]
        seen, offset = [], 0
        while True:  # the seed's loop, as its guide writes it
            rows = db.session.execute(sa.select(Order.order_number).where(where)
                                      .order_by(Order.id).offset(offset).limit(10)).scalars().all()
            if not rows:
                break
            seen += rows
            db.session.execute(sa.update(Order).where(Order.order_number.in_(rows))
                               .values(recharge_status="success", recharge_at=utcnow()))
            db.session.commit()
            offset += 10
        assert len(seen) < 25  # rows 11-20 were skipped

        db.session.execute(sa.update(Order).where(Order.order_number.in_(numbers))
                           .values(recharge_status="pending", recharge_at=None))
        db.session.commit()
        s = sweep.run(services.current())
        assert s.found == 25 and s.settled == 25
        assert {e["requestId"] for e in sandbox.log()} == set(numbers)


def test_sweep_stops_at_its_time_limit(make_app, app, sandbox):
    app = make_app(SWEEP_MAX_SECONDS=0)
    with app.app_context():
        _bulk_due_orders(3)
        s = sweep.run(services.current())
        assert s.stopped_early and s.found == 0


# -- processes: two sweeps at once, a killed sweep, the crontab line ------------------------

def _sweep_proc(settings_env, **extra):
    env = {**os.environ, **settings_env, "FLASK_APP": "wsgi", **{k: str(v) for k, v in extra.items()}}
    return subprocess.Popen([sys.executable, "-m", "flask", "elife", "sweep"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@mysql_only
def test_two_sweeps_at_once_submit_each_order_exactly_once(app, ctx, sandbox, settings_env):
    numbers = _bulk_due_orders(200)
    procs = [_sweep_proc(settings_env) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    log = sandbox.log()
    assert sorted(e["requestId"] for e in log) == sorted(numbers)  # each once, none twice
    claimed = [int(re.search(r"claimed=(\d+)", o).group(1)) for o, _ in outs]
    assert sum(claimed) == 200
    statuses = db.session.execute(sa.select(Order.recharge_status, sa.func.count())
                                  .group_by(Order.recharge_status)).all()
    assert dict(statuses) == {"success": 200}


def test_a_killed_sweep_loses_nothing(app, ctx, sandbox, settings_env):
    numbers = _bulk_due_orders(12)
    sandbox.mode("slow")  # each submit takes a third of a second
    p = _sweep_proc(settings_env)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(sandbox.log()) < 3:
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    sandbox.mode("success")
    # Settle what the killed run left in flight (its claim is older than 0 s).
    p2 = _sweep_proc(settings_env, SWEEP_STUCK_SECONDS=0)
    out, err = p2.communicate(timeout=120)
    assert p2.returncode == 0, err
    db.session.commit()
    rows = dict(db.session.execute(sa.select(Order.order_number, Order.recharge_status)
                                   .where(Order.order_number.in_(numbers))).all())
    assert set(rows.values()) == {"success"}, rows
    per_order = {}
    for e in sandbox.log():
        per_order[e["requestId"]] = per_order.get(e["requestId"], 0) + 1
    assert per_order == {n: 1 for n in numbers}


def test_sweep_exits_nonzero_only_when_it_cannot_run(settings_env):
    from conftest import free_port
    port = free_port()
    p = _sweep_proc(settings_env, DATABASE_URL=f"mysql://root:the-password@127.0.0.1:{port}/x",
                    DB_MAX_RETRIES=2, DB_RETRY_DELAY=0)
    out, err = p.communicate(timeout=60)
    assert err.splitlines()[0] == f"database: mysql+pymysql root@127.0.0.1:{port}/x"
    assert "the-password" not in err
    # It waited as the service does (each attempt logged), then said it cannot run.
    assert "数据库连接失败 (尝试 2/2)" in err
    assert p.returncode == 1 and "sweep: could not run: database unreachable" in err
    assert out == ""


def test_crontab_line_runs_the_sweep_as_cron_would(app, ctx, sandbox, settings_env, tmp_path):
    [n] = _bulk_due_orders(1)
    text = (REPO / "crontab").read_text()
    entries = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    variables = dict(ln.split("=", 1) for ln in entries if re.fullmatch(r"[A-Z_]+=\S*", ln))
    line = next(ln for ln in entries if ln not in [f"{k}={v}" for k, v in variables.items()])
    fields = line.split(None, 5)
    assert fields[:5] == ["*"] * 5  # every minute
    command = fields[5]
    assert "flock -n" in command
    # cron: /bin/sh, a minimal environment, another working directory; the settings come
    # from the environment here as they would from .env on a server.
    assert variables["ELIFE_ENV"] == "production"
    sandbox_base = f"http://127.0.0.1:{settings_env['SANDBOX_PORT']}"
    production = {  # what a server's .env holds; here the parties are the sandbox
        "WECHAT_API_BASE": f"{sandbox_base}/wechat", "WECHAT_APPID": "wx", "WECHAT_MCH_ID": "1",
        "WECHAT_ENV_ID": "e", "UNITEL_API_URL": f"{sandbox_base}/unitel", "UNITEL_USERNAME": "u",
        "UNITEL_PASSWORD": "p", "ADMIN_TOKEN": "a" * 32, "SECRET_KEY": "s" * 32}
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SHELL": "/bin/sh",
           **variables, "ELIFE_HOME": str(REPO), **production,
           **{k: settings_env[k] for k in ("DATABASE_URL", "LOG_DIR")}}
    cron_log = REPO / "logs" / "sweep.cron.log"
    before = cron_log.stat().st_size if cron_log.exists() else 0
    r = subprocess.run(["/bin/sh", "-c", command], cwd=tmp_path, env=env, timeout=120)
    assert r.returncode == 0
    assert order_row(n)["recharge_status"] == "success"
    with open(cron_log, encoding="utf-8") as f:
        f.seek(before)
        assert "sweep: found=1 claimed=1 settled=1" in f.read()
    # flock: a second run while another holds the lock exits at once without sweeping.
    holder = subprocess.Popen(["flock", "/tmp/elife-sweep.lock", "sleep", "5"])
    try:
        time.sleep(0.3)
        started = time.monotonic()
        r = subprocess.run(["/bin/sh", "-c", command], cwd=tmp_path, env=env, timeout=60)
        assert r.returncode != 0 and time.monotonic() - started < 3
    finally:
        holder.kill()
        holder.wait()


def test_flask_report_prints_and_alerts(app, ctx, settings_env):
    env = {**os.environ, **settings_env, "FLASK_APP": "wsgi"}
    r = subprocess.run([sys.executable, "-m", "flask", "elife", "report"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "1. recharge success rate" in r.stdout and "4. waiting for compensation" in r.stdout
    _bulk_due_orders(11)  # 11 paid orders waiting 10 minutes: over the threshold of 10
    r = subprocess.run([sys.executable, "-m", "flask", "elife", "report", "--json"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    import json
    rep = json.loads(r.stdout)
    assert rep["pending"]["pendingCount"] == 11 and rep["pending"]["alert"] is True


def test_trade_refunded_at_wechat_is_never_marked_paid(app, ctx, client, customer, sandbox):
    """A trade refunded out of band (say, from the merchant platform) before its lost
    callback was recovered: the sweep must not mark it paid and top the number up."""
    from elife.clients.wechat import WeChatClient
    n = _paid_order(client, customer, sandbox, notify=False)
    WeChatClient(app.config["SETTINGS"]).refund(order_number=n, total_fee=order_row(n)["total_fee"],
                                                reason="out of band")
    _set(n, payment_created_at=utcnow() - LONG_AGO)
    s = sweep.run(services.current())
    assert order_row(n)["payment_status"] == "unpaid" and sandbox.submits_for(n) == []
    assert s.skipped == 1


def test_a_lost_request_is_flagged_once_not_every_minute(make_app, app, sandbox, log_dir):
    app = make_app(SWEEP_STUCK_SECONDS=0)
    with app.app_context():
        [n] = _bulk_due_orders(1)
        # The resubmit's worker died after its claim, and the operator knows neither
        # request: only a person can decide, and the sweep then leaves the order alone.
        _set(n, recharge_status="processing", recharge_at=utcnow() - LONG_AGO, submit_count=2, version=3)
        for _ in range(3):
            sweep.run(services.current())
        row = order_row(n)
        assert row["recharge_status"] == "unknown" and row["anomaly_reason"] == "operator_lost_request"
        assert row["anomaly_details"].count("operator_lost_request") == 1
        assert sandbox.submits_for(n) == []
    errors = (log_dir / "error.log").read_text(encoding="utf-8")
    assert errors.count(f"event=operator_lost_request order={n}") == 1


def test_stuck_processing_with_no_clear_answer_becomes_unknown_and_flagged(make_app, app, sandbox):
    """A claim whose worker died, and a status endpoint that cannot say: the order is not
    left 'processing' unflagged forever."""
    app = make_app(SWEEP_STUCK_SECONDS=60, UNITEL_API_URL=f"http://127.0.0.1:{free_port()}/unitel")
    with app.app_context():
        [n] = _bulk_due_orders(1)
        _set(n, recharge_status="processing", recharge_at=utcnow() - LONG_AGO, submit_count=1, version=1)
        sweep.run(services.current())
        row = order_row(n)
        assert (row["recharge_status"], row["anomaly_reason"]) == ("unknown", "recharge_unknown")
        assert row["submit_count"] == 1 and sandbox.submits_for(n) == []


# -- housekeeping ----------------------------------------------------------------------------

def test_housekeeping_drops_admin_sessions_past_their_12_hours(app, ctx):
    from elife.models import AdminSession
    now = utcnow()
    db.session.add_all([AdminSession(sid="old", actor="admin", created_at=now - timedelta(hours=13),
                                     expires_at=now - timedelta(hours=1)),
                        AdminSession(sid="live", actor="admin", created_at=now, expires_at=now + timedelta(hours=12))])
    db.session.commit()
    sweep.run(services.current())
    assert db.session.execute(sa.select(AdminSession.sid)).scalars().all() == ["live"]


def _notice_rows(*rows):
    """payment_notices rows as (order_number, received_at)."""
    from elife.models import PaymentNotice
    db.session.add_all([PaymentNotice(order_number=n, received_at=t, body="{}", decision="rejected")
                        for n, t in rows])
    db.session.commit()


def _notices_left():
    from elife.models import PaymentNotice
    return sorted(db.session.execute(sa.select(PaymentNotice.order_number, PaymentNotice.received_at)).all())


def test_housekeeping_purges_old_notices_but_a_flagged_orders(app, ctx):
    [plain, flagged] = _bulk_due_orders(2)
    _set(flagged, anomaly_reason="amount_mismatch")
    now = utcnow()
    old, recent = now - timedelta(days=181), now - timedelta(days=179)
    _notice_rows((plain, old), (plain, recent), (flagged, old), ("ORD-NOT-OURS", old), ("ORD-NOT-OURS", recent))
    sweep.run(services.current())
    assert _notices_left() == sorted([(plain, recent), (flagged, old), ("ORD-NOT-OURS", recent)])
    # Resolved: its old notices go with the next run.
    _set(flagged, anomaly_reason=None)
    sweep.run(services.current())
    assert (flagged, old) not in _notices_left()


def test_the_notice_purge_works_in_bounded_batches(make_app, app, sandbox):
    app = make_app(NOTICE_RETENTION_DAYS=1)
    with app.app_context():
        long_ago = utcnow() - timedelta(days=2)
        _notice_rows(*[(f"ORD{i:010d}", long_ago + timedelta(seconds=i)) for i in range(25)])
        assert sweep.purge_old_notices(services.current().settings, utcnow(), batch=10, batches=2) == 20
        left = _notices_left()
        assert [n for n, _ in left] == [f"ORD{i:010d}" for i in range(20, 25)]  # oldest went first
        assert sweep.purge_old_notices(services.current().settings, utcnow(), batch=10, batches=2) == 5
        assert _notices_left() == []
