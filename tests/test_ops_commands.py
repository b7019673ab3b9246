"""The operator's commands: scripts/smoke against a running service,
`flask elife incident` answering 'was anything sent to the operator twice?', the report
in a terminal, and the database line every command starts with."""
import os
import re
import subprocess
import sys

from conftest import REPO, free_port, mysql_only
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


# -- every command says which database it works on --------------------------------------

def _database_line(stderr):
    return [ln for ln in stderr.splitlines() if ln.startswith("database: ")]


def test_report_json_names_its_database_on_stderr_and_keeps_stdout_json(settings_env, migrated):
    import json

    import sqlalchemy as sa
    r = _run([sys.executable, "-m", "flask", "--app", "wsgi", "elife", "report", "--json"], settings_env)
    assert r.returncode in (0, 2), r.stderr
    assert "generatedAt" in json.loads(r.stdout)  # nothing else on stdout
    u = sa.engine.make_url(settings_env["DATABASE_URL"])
    if u.get_backend_name() == "sqlite":
        assert _database_line(r.stderr) == [f"database: sqlite {u.database}"]
    else:
        assert _database_line(r.stderr) == [
            f"database: mysql+pymysql {u.username}@{u.host}:{u.port or 3306}/{u.database}"]


@mysql_only
def test_the_database_line_never_shows_the_password(settings_env, migrated):
    """A real account with a password, as on a server (the test's own, dropped after)."""
    import json
    import secrets

    import sqlalchemy as sa
    u = sa.engine.make_url(settings_env["DATABASE_URL"])
    user, password = f"elife_pw_{secrets.token_hex(4)}", f"pw-{secrets.token_hex(8)}"
    admin = sa.create_engine(u)
    with admin.begin() as c:
        c.execute(sa.text(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'"))
        c.execute(sa.text(f"GRANT ALL ON `{u.database}`.* TO '{user}'@'%'"))
    try:
        url = u.set(username=user, password=password).render_as_string(hide_password=False)
        for args in (["elife", "report", "--json"], ["db", "current"]):
            r = _run([sys.executable, "-m", "flask", "--app", "wsgi", *args], settings_env, DATABASE_URL=url)
            assert r.returncode in (0, 2), r.stderr
            assert _database_line(r.stderr) == [
                f"database: mysql+pymysql {user}@{u.host}:{u.port or 3306}/{u.database}"]
            assert password not in r.stderr + r.stdout
        json.loads(_run([sys.executable, "-m", "flask", "--app", "wsgi", "elife", "report", "--json"],
                        settings_env, DATABASE_URL=url).stdout)
    finally:
        with admin.begin() as c:
            c.execute(sa.text(f"DROP USER IF EXISTS '{user}'@'%'"))
        admin.dispose()


# -- the report in a terminal ----------------------------------------------------------------

def test_report_on_an_empty_database_never_prints_none(app, ctx, client, customer, sandbox, settings_env):
    r = _run([sys.executable, "-m", "flask", "elife", "report"], settings_env)
    assert r.returncode == 0, r.stderr
    assert "None" not in r.stdout
    assert "success rate: -  (no data: nothing paid in the window)" in r.stdout
    assert "no data: nothing recharged in the window" in r.stdout
    assert "oldest paid at: -" in r.stdout

    # One order paid and recharged: the figures are there.
    n = client.post("/orders", json={"phoneNumber": "88888888", "productOperator": "UNITEL",
                                     "rechargeType": "VOICE", "productCode": "5000"},
                    headers=customer).get_json()["orderNumber"]
    client.post("/payment/create", json={"orderNumber": n}, headers=customer)
    sandbox.pay(n, notify=False)
    notice = sandbox.notice(n)
    client.post(notice["path"], json=notice["body"], headers=notice["headers"])
    r = _run([sys.executable, "-m", "flask", "elife", "report"], settings_env)
    assert "None" not in r.stdout and "no data" not in r.stdout
    assert "success rate: 100.00%" in r.stdout
    assert re.search(r"paid -> claimed: avg \d+\.\d+ s, max \d+\.\d+ s, min \d+\.\d+ s", r.stdout)
