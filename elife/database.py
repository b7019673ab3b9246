"""Database connection settings, the start-up connection check, and safe retries.

Only errors that leave nothing half-done are retried (the server went away, the
connection was lost, a deadlock or lock-wait timeout rolled our transaction back), and
only by re-running a whole unit of work that is safe to repeat. Everything else fails
at once.
"""
import logging
import os
import random
import time

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.exc import DBAPIError, OperationalError
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from .extensions import db
from .logs import event

log = logging.getLogger("elife.database")

# MySQL/MariaDB error numbers worth a retry of the whole transaction.
TRANSIENT_MYSQL_ERRORS = {
    2006,  # server has gone away
    2013,  # lost connection during query
    2003,  # can't connect (restarting)
    1213,  # deadlock; InnoDB rolled the transaction back
    1205,  # lock wait timeout
    1020,  # record has changed since last read
    1927,  # connection was killed (MariaDB)
}


def describe(url):
    """Which database a URL names, never its password: `mysql+pymysql root@127.0.0.1:3306/elife`,
    `sqlite /srv/elife/instance/elife.db`."""
    u = sa.engine.make_url(url)
    if u.get_backend_name() == "sqlite":
        return f"{u.drivername} {os.path.abspath(u.database) if u.database else ':memory:'}"
    port = u.port or {"mysql": 3306, "postgresql": 5432}.get(u.get_backend_name())
    return (f"{u.drivername} {u.username + '@' if u.username else ''}{u.host or 'localhost'}"
            f"{':' + str(port) if port else ''}/{u.database or ''}")


def engine_options(url, connect_timeout=2, recycle=280):
    if url.startswith("sqlite"):
        # Several processes (gunicorn workers, the sweep) share the file: wait for locks.
        return {"connect_args": {"timeout": 30}, "hide_parameters": True}
    return {
        # A logged database error must not carry a phone number in its parameters.
        "hide_parameters": True,
        "pool_pre_ping": True,
        "pool_recycle": recycle,
        "pool_size": 5,
        "max_overflow": 5,
        "pool_timeout": 10,
        "connect_args": {"connect_timeout": connect_timeout, "read_timeout": 30, "write_timeout": 30},
    }


def install_sqlite_pragmas(engine):
    if engine.dialect.name != "sqlite":
        return

    @sa_event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _):
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()


# MySQL 8.0's default sql_mode (its manual, "Server SQL Modes"). MariaDB's default lacks
# ONLY_FULL_GROUP_BY, NO_ZERO_IN_DATE and NO_ZERO_DATE.
MYSQL_80_SQL_MODE = ("ONLY_FULL_GROUP_BY,STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,"
                     "ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION")


def install_mysql_branch(engine, enabled):
    """DB_MYSQL_BRANCH on MariaDB: every statement takes the branch it takes on MySQL 8.0.

    SQLAlchemy turns on what MariaDB has and MySQL lacks when it first connects (RETURNING
    on INSERT and DELETE, sequences); our code asks the dialect (shop/limits.py reads its
    counts back where there is no RETURNING), and so does the ORM. This turns them off
    again after that first look, and gives every connection MySQL 8.0's sql_mode. On MySQL
    itself there is nothing to turn off: it does nothing there, nor on SQLite."""
    if not enabled or engine.dialect.name != "mysql":
        return

    # Registered after create_engine's own first-connect hook, so it runs after it.
    @sa_event.listens_for(engine, "connect")
    def _as_mysql(dbapi_conn, _):
        dialect = engine.dialect
        if not dialect.is_mariadb:
            return
        dialect.insert_returning = dialect.delete_returning = dialect.update_returning = False
        dialect.supports_sequences = False
        cur = dbapi_conn.cursor()
        cur.execute(f"SET SESSION sql_mode = '{MYSQL_80_SQL_MODE}'")
        cur.close()


def mysql_errno(exc):
    orig = getattr(exc, "orig", exc)
    args = getattr(orig, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def is_transient(exc):
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, (OperationalError, DBAPIError)):
        if mysql_errno(exc) in TRANSIENT_MYSQL_ERRORS:
            return True
        if "database is locked" in str(getattr(exc, "orig", exc)):
            return True
    return False


def run_unit(settings, fn, what="unit"):
    """Run fn() -- one whole transaction that is safe to repeat, such as a conditional
    UPDATE and its commit -- retrying it on transient errors only.

    Waits grow from 50 ms with full jitter, capped at DB_RETRY_DELAY: a request cannot
    sit out the seed's 5-second start-up delay between attempts.
    """
    attempts = max(1, settings.DB_MAX_RETRIES)

    def _before_sleep(state):
        db.session.rollback()
        event(log, logging.WARNING, "db_retry",
              f"数据库操作失败，重试中 ({state.attempt_number}/{attempts})",
              unit=what, error=type(state.outcome.exception()).__name__)

    cap = max(0.0, settings.DB_RETRY_DELAY / 1000.0)
    for attempt in Retrying(stop=stop_after_attempt(attempts),
                            wait=wait_random_exponential(multiplier=0.05, max=cap),
                            retry=retry_if_exception(is_transient), reraise=True,
                            before_sleep=_before_sleep):
        with attempt:
            return fn()


def remove_session(exc=None):
    """Teardown of every app context: end the request's session.

    Flask-SQLAlchemy's own teardown rolls the session back; when the connection died
    after the request's last commit (a MariaDB restart, KILL CONNECTION, a reset), that
    rollback raises, and an answer already made -- an order created, a payment recorded
    -- reaches the client as a bare 500 from gunicorn. A lost connection leaves nothing to
    roll back (the server did it), and SQLAlchemy has invalidated it: log it and close
    the session again, which then ends cleanly. Registered after db.init_app, so it runs
    first and Flask-SQLAlchemy's teardown finds nothing left to do."""
    try:
        db.session.remove()
    except DBAPIError as e:
        if not is_transient(e):
            raise
        event(log, logging.WARNING, "session_close_lost_connection",
              error=str(getattr(e, "orig", e)).splitlines()[0][:200])
        db.session.remove()


def ping():
    with db.engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))


def wait_for_database(settings):
    """At start: connect, retrying DB_MAX_RETRIES times DB_RETRY_DELAY ms apart.

    Gives up with an error line but does not stop the service: /health then answers 503,
    and the pool reconnects by itself once the database is back.
    """
    attempts = max(1, settings.DB_MAX_RETRIES)
    delay = settings.DB_RETRY_DELAY / 1000.0
    for n in range(1, attempts + 1):
        try:
            ping()
            event(log, logging.INFO, "database_connected", "数据库连接成功",
                  dialect=db.engine.dialect.name)
            return True
        except Exception as exc:  # noqa: BLE001 -- any failure to connect is reported the same way
            event(log, logging.WARNING if n < attempts else logging.ERROR, "database_connect_failed",
                  f"数据库连接失败 (尝试 {n}/{attempts})", error=str(exc).splitlines()[0][:200])
            if n < attempts:
                time.sleep(delay + random.uniform(0, delay / 4))
    return False

