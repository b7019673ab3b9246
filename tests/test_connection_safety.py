"""The session's one connection, and units of work repeated after a lost answer.

A request keeps one database connection across its transactions (extensions.py), and
database.run_unit repeats a unit when the connection drops -- also when the server did
apply the COMMIT and only its acknowledgement was lost. These tests lose that
acknowledgement on purpose, kill the connection between transactions, and use the held
connection behind the session's back: the customer's top-up must still go out exactly
once, and every commit must commit.
"""
import json

import pymysql
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from conftest import mysql_only, order_row
from elife import services
from elife import database, extensions
from elife.fulfil import recharge, state
from elife.extensions import db
from elife.models import Order
from elife.timeutil import utcnow

from test_payment import log_lines
from test_recharge import kinds, new_order, update

OK = {"errcode": 0, "errmsg": "OK"}


def lose_first_ack(monkeypatch, unit_name):
    """run_unit(unit_name): the first attempt commits, then fails as PyMySQL does when
    the connection drops before COMMIT's OK packet arrives (2013)."""
    real = database.run_unit

    def run_unit(settings, fn, what="unit"):
        if what != unit_name:
            return real(settings, fn, what)
        calls = []

        def once_lost():
            result = fn()
            calls.append(1)
            if len(calls) == 1:
                raise OperationalError("COMMIT", {}, pymysql.err.OperationalError(
                    2013, "Lost connection to MySQL server during query"))
            return result
        return real(settings, once_lost, what)

    monkeypatch.setattr(database, "run_unit", run_unit)


def test_a_lost_acknowledgement_of_the_paid_commit_still_tops_up_once(
        client, sandbox, customer, ctx, monkeypatch, log_dir):
    n = new_order(client, customer, "88119001")
    sandbox.pay(n, notify=False)
    notice = sandbox.notice(n)
    lose_first_ack(monkeypatch, "mark_paid")
    r = client.post(notice["path"], headers=notice["headers"], data=json.dumps(notice["body"]))
    assert (r.status_code, r.get_json()) == (200, OK)
    assert len(sandbox.submits_for(n)) == 1
    row = order_row(n)
    assert (row["payment_status"], row["recharge_status"], row["submit_count"]) == ("paid", "success", 1)
    assert kinds(n) == [("submit", "success")]
    with db.engine.connect() as c:
        decisions = c.execute(sa.text("SELECT decision FROM payment_notices WHERE order_number = :n"),
                              {"n": n}).scalars().all()
    assert decisions == ["paid"]
    assert log_lines(log_dir, "event=claim_found_after_retry", f"order={n}")
    assert not log_lines(log_dir, "event=already_processing", f"order={n}")


def test_a_lost_acknowledgement_of_the_claim_commit_still_tops_up_once(
        app, client, sandbox, customer, monkeypatch):
    n = new_order(client, customer, "88119002")
    sandbox.pay(n, notify=False)
    lose_first_ack(monkeypatch, "claim")
    with app.app_context():
        update(n, payment_status="paid", paid_at=utcnow(), version=Order.version + 1)
        assert recharge.recharge_paid_order(services.current(), n, "sweep") == "success"
        assert kinds(n) == [("submit", "success")]  # one row, for the one request that left
    assert len(sandbox.submits_for(n)) == 1


def test_every_commit_commits_even_after_the_held_connection_was_used_directly(app, ctx):
    """A statement on the session's connection between its transactions autobegins a
    transaction the session did not begin; the session's next commit must commit it."""
    conn = db.session.connection()
    db.session.commit()
    conn.execute(sa.text("SELECT 1"))
    db.session.execute(sa.text("INSERT INTO users (openid, created_at, updated_at) "
                               "VALUES ('held-connection', '2026-01-01', '2026-01-01')"))
    db.session.commit()
    db.session.remove()
    with db.engine.connect() as c:
        assert c.execute(sa.text("SELECT COUNT(*) FROM users WHERE openid = 'held-connection'")).scalar() == 1


@mysql_only
def test_a_connection_killed_while_the_request_waits_is_replaced(app, ctx, monkeypatch):
    """The connection dies between two transactions (MariaDB restarted, KILL, a proxy's
    idle timeout) while the request waits on WeChat or the operator: the next
    transaction checks a fresh, pinged connection out of the pool."""
    monkeypatch.setattr(extensions, "IDLE_RECHECK_SECONDS", 0.0)
    victim = db.session.execute(sa.text("SELECT CONNECTION_ID()")).scalar()
    db.session.commit()
    with db.engine.connect() as other:
        other.execute(sa.text(f"KILL CONNECTION {int(victim)}"))
    assert state.read_fresh("ORD000000000") is None  # a read outside any retry
    assert db.session.execute(sa.text("SELECT CONNECTION_ID()")).scalar() != victim
    db.session.commit()
