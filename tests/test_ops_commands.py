"""The operator's commands: scripts/smoke against a running service, and
`flask elife incident` answering 'was anything sent to the operator twice?'."""
import os
import subprocess
import sys

from conftest import REPO, free_port
from elife.fulfil.audit import record_call
from elife.extensions import db
from elife.models import Order


def _run(args, settings_env, **extra):
    env = {**os.environ, **settings_env, "FLASK_APP": "wsgi", **extra}
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_smoke_passes_against_a_sandboxed_service(live, sandbox, settings_env):
    r = _run([str(REPO / "scripts" / "smoke"), live.url, sandbox.url], settings_env)
    assert r.returncode == 0, r.stdout + r.stderr
    for step in ("health", "catalogue", "login", "order", "payment", "pay (sandbox)", "recharged"):
        assert f"ok    {step}" in r.stdout
    assert "smoke: all steps passed" in r.stdout


def test_smoke_stops_at_the_first_failure(settings_env):
    r = _run([str(REPO / "scripts" / "smoke"), f"http://127.0.0.1:{free_port()}"], settings_env)
    assert r.returncode == 1
    assert "FAIL  health" in r.stdout and "catalogue" not in r.stdout


def test_incident_scopes_and_finds_a_double_submit(app, ctx, client, customer, order, sandbox, settings_env):
    n = order["orderNumber"]
    client.post("/payment/create", json={"orderNumber": n}, headers=customer)
    sandbox.pay(n, notify=False)
    notice = sandbox.notice(n)
    assert client.post(notice["path"], json=notice["body"], headers=notice["headers"]).get_json()["errcode"] == 0

    r = _run([sys.executable, "-m", "flask", "elife", "incident", "--since", "2020-01-01 00:00"], settings_env)
    assert r.returncode == 0, r.stderr
    assert "paid      success" in r.stdout
    assert "orders sent to the operator twice without cause: 0" in r.stdout

    # Forge the audit trail of a double submit: the command must say so and exit 2.
    o = db.session.query(Order).filter_by(order_number=n).one()
    record_call(o, "submit", "success", "forged second submit")
    db.session.commit()
    r = _run([sys.executable, "-m", "flask", "elife", "incident", "--since", "2020-01-01 00:00"], settings_env)
    assert r.returncode == 2
    assert f"{n} msisdn 88****88: 2 submits (SENT TWICE)" in r.stdout


def test_incident_rejects_a_bad_time(settings_env, migrated):
    r = _run([sys.executable, "-m", "flask", "elife", "incident", "--since", "yesterday"], settings_env)
    assert r.returncode == 2 and "--since" in r.stderr
