"""Database faults: transient errors retry the whole unit, others fail at once, and a
database that is down answers 503 JSON, never a 500."""
import os
import subprocess
import sys
import threading
import time

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from conftest import REPO, free_port, mysql_only
from elife import create_app, database
from elife.extensions import db


def test_unreachable_database_is_503_json_not_500(settings_env):
    app = create_app({**settings_env, "DB_MAX_RETRIES": "1", "DB_RETRY_DELAY": "0",
                      "DATABASE_URL": f"mysql+pymysql://root@127.0.0.1:{free_port()}/elife"})
    r = app.test_client().get("/products")
    assert r.status_code == 503
    assert r.get_json()["error"]["code"] == "database_unavailable"
    assert r.headers["Retry-After"]


def test_a_worker_logs_each_failed_attempt_at_start(settings_env, tmp_path):
    """A gunicorn worker imports wsgi: it waits for the database, logging each attempt,
    and then serves anyway (503 until the database is back)."""
    env = {k: v for k, v in os.environ.items() if k != "FLASK_RUN_FROM_CLI"}
    env.update({**settings_env, "LOG_DIR": str(tmp_path), "DB_MAX_RETRIES": "3", "DB_RETRY_DELAY": "10",
                "DATABASE_URL": f"mysql+pymysql://root@127.0.0.1:{free_port()}/elife"})
    r = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "combined.log").read_text(encoding="utf-8")
    for n in (1, 2, 3):
        assert f"数据库连接失败 (尝试 {n}/3)" in text


def test_building_an_app_does_not_wait_for_the_database(settings_env, tmp_path):
    """create_app is what tests and tools build: only the service and the commands wait."""
    started = time.monotonic()
    create_app({**settings_env, "LOG_DIR": str(tmp_path), "DB_MAX_RETRIES": "3", "DB_RETRY_DELAY": "2000",
                "DATABASE_URL": f"mysql+pymysql://root@127.0.0.1:{free_port()}/elife"})
    assert time.monotonic() - started < 1.5
    assert "数据库连接失败" not in (tmp_path / "combined.log").read_text(encoding="utf-8")


def test_non_transient_errors_are_not_retried(app, ctx):
    calls = []

    def unit():
        calls.append(1)
        db.session.execute(sa.text("INSERT INTO users (id, openid, created_at, updated_at) "
                                   "VALUES (1, 'x', '2026-01-01', '2026-01-01')"))
        db.session.execute(sa.text("INSERT INTO users (id, openid, created_at, updated_at) "
                                   "VALUES (1, 'y', '2026-01-01', '2026-01-01')"))
        db.session.commit()

    with pytest.raises(IntegrityError):
        database.run_unit(app.config["SETTINGS"], unit, "test")
    db.session.rollback()
    assert len(calls) == 1


@mysql_only
def test_a_deadlock_victim_is_retried_as_a_whole_unit(app, ctx, log_dir):
    """A real InnoDB deadlock (error 1213): two units lock two rows in opposite orders.
    Whichever InnoDB picks as the victim is rolled back and re-run whole; both commit."""
    with db.engine.begin() as c:
        c.execute(sa.text("INSERT INTO users (openid, created_at, updated_at) VALUES "
                          "('first', NOW(), NOW()), ('second', NOW(), NOW())"))
        a, b = [r[0] for r in c.execute(sa.text("SELECT id FROM users ORDER BY id"))]
    settings = app.config["SETTINGS"]
    both_hold_one = threading.Barrier(2, timeout=10)
    attempts = {"left": 0, "right": 0}

    def unit_for(name, mine, theirs):
        def unit():
            attempts[name] += 1
            db.session.execute(sa.text("UPDATE users SET openid = CONCAT(openid, :s) WHERE id = :i"),
                               {"s": f"-{name}1", "i": mine})
            if attempts[name] == 1:
                both_hold_one.wait()  # each holds one row and now asks for the other's
            db.session.execute(sa.text("UPDATE users SET openid = CONCAT(openid, :s) WHERE id = :i"),
                               {"s": f"-{name}2", "i": theirs})
            db.session.commit()
        return unit

    def run(name, mine, theirs):
        with app.app_context():
            database.run_unit(settings, unit_for(name, mine, theirs), f"deadlock_{name}")
            db.session.remove()

    t = threading.Thread(target=run, args=("right", b, a))
    t.start()
    run("left", a, b)
    t.join()
    assert sorted(attempts.values()) == [1, 2]  # one deadlock victim, re-run once
    with db.engine.connect() as c:
        rows = [r[0] for r in c.execute(sa.text("SELECT openid FROM users ORDER BY id"))]
    assert all(r.count("-left") == 1 and r.count("-right") == 1 for r in rows), rows
    text = (log_dir / "combined.log").read_text(encoding="utf-8")
    assert "event=db_retry" in text and "数据库操作失败，重试中 (1/3)" in text
