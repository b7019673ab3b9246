"""Cloud Hosting offers MySQL 5.7 and 8.0, not MariaDB: DB_MYSQL_BRANCH makes the code take
on MariaDB the branch it takes on MySQL 8.0 (no RETURNING, no sequences, MySQL 8.0's
sql_mode), and every statement of a customer's order, its payment, the sweep, the reports
and the reconciliation is watched for what MySQL 8.0 lacks. MariaDB only."""
import json
import re

import pytest
import sqlalchemy as sa

from conftest import SEED_ORDER, login, mysql_only, order_row
from elife import database, limits, services
from elife.extensions import db
from elife.fulfil import reconcile, sweep

pytestmark = mysql_only
ADMIN = {"Authorization": "Bearer test-admin-token"}
# What MariaDB has and MySQL 8.0 does not: RETURNING on INSERT/DELETE/REPLACE, sequences.
MARIADB_ONLY = re.compile(r"\bRETURNING\b|\bNEXTVAL\s*\(|\bNEXT\s+VALUE\s+FOR\b|\bLASTVAL\s*\(|\bSEQUENCE\b",
                          re.IGNORECASE)


@pytest.fixture
def fresh_upsert(monkeypatch):
    # elife/limits.py keeps its compiled upsert per dialect name, and the suite's own apps may
    # have built it with RETURNING: each app here builds its own.
    monkeypatch.setattr(limits, "_UPSERT", {})


def _walk(app, sandbox):
    """A customer's order through payment and top-up, the sweep, the admin reports and a
    day's reconciliation, in process; every statement sent, in order."""
    sent = []

    def _watch(conn, cursor, statement, parameters, context, executemany):
        sent.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", _watch)
    try:
        client = app.test_client()
        me = login(client, "mysql-branch")
        r = client.post("/orders", json=SEED_ORDER, headers=me)
        assert r.status_code == 201, r.get_json()
        n = r.get_json()["orderNumber"]
        assert client.post("/payment/create", json={"orderNumber": n}, headers=me).status_code == 200
        assert sandbox.pay(n, notify=False).status_code == 200
        notice = sandbox.notice(n)
        r = client.post(notice["path"], headers=notice["headers"], data=json.dumps(notice["body"]))
        assert r.status_code == 200, r.get_data(as_text=True)
        assert order_row(n)["recharge_status"] == "success"
        sweep.run(services.current())
        assert client.get("/admin/orders/" + n + ".json", headers=ADMIN).status_code == 200
        assert client.get("/admin", headers=ADMIN).status_code == 200
        reconcile.run(services.current(), reconcile.china_today())  # today's bill holds this payment
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", _watch)
    return sent


def test_the_mysql_branch_sends_nothing_mysql_80_lacks(make_app, app, sandbox, fresh_upsert):
    branch = make_app(DB_MYSQL_BRANCH="true")
    with branch.app_context():
        sent = _walk(branch, sandbox)
        mode = db.session.execute(sa.text("SELECT @@SESSION.sql_mode")).scalar()
        db.session.commit()
    assert len(sent) > 30, sent  # the walk did run its statements
    assert [s for s in sent if MARIADB_ONLY.search(s)] == []
    assert set(mode.split(",")) == set(database.MYSQL_80_SQL_MODE.split(","))
    # the abuse limits' upsert counted, then read its counts back (no RETURNING to say them)
    upserts = [i for i, s in enumerate(sent) if "ON DUPLICATE KEY UPDATE" in s and "rate_limits" in s]
    assert upserts and all("SELECT" in sent[i + 1] and "rate_limits" in sent[i + 1] for i in upserts)


def test_without_it_mariadb_takes_its_own_branch(make_app, app, sandbox, fresh_upsert):
    """The watch above can see a MariaDB-only statement: without the switch, MariaDB
    10.5+ is sent RETURNING (the limits' upsert), which MySQL 8.0 would refuse."""
    plain = make_app(DB_MYSQL_BRANCH="false")
    with plain.app_context():
        sent = _walk(plain, sandbox)
    assert any(MARIADB_ONLY.search(s) for s in sent)
