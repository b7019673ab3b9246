"""Unbound extension objects: models and blueprints import these, never the app."""
import time

from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_sqlalchemy.session import Session

# A connection left idle this long (the request waited on WeChat or the operator) goes
# back to the pool before the next transaction, and a fresh one is checked out, and so
# pre-pinged: a MariaDB restart or a KILL during the wait costs nothing.
IDLE_RECHECK_SECONDS = 1.0


class OneConnectionSession(Session):
    """A session that keeps one database connection across its transactions (a
    request, a sweep run) instead of checking one out for each.

    SQLAlchemy's default returns the connection to the pool at every commit (a ROLLBACK
    to reset it) and checks one out for the next statement (a pre-ping): two extra round
    trips per commit. A callback commits at every step of its state machine, so that was
    most of its database time (bench/notes.md). Transactions are unchanged: each
    commit() commits (join_transaction_mode "control_fully", below: even a transaction
    begun on the connection outside the session is the session's to commit).
    """

    _conn = None
    _last_used = 0.0

    def get_bind(self, mapper=None, clause=None, bind=None, **kwargs):
        if bind is not None:
            return bind
        conn, now = self._conn, time.monotonic()
        if (conn is not None and self._transaction is None and not conn.in_transaction()
                and now - self._last_used > IDLE_RECHECK_SECONDS):
            self._conn = None
            conn.close()
            conn = None
        if conn is None or conn.closed:
            conn = self._conn = super().get_bind(mapper, clause, **kwargs).connect()
        self._last_used = now
        return conn

    def close(self):
        try:
            super().close()
        finally:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()


db = SQLAlchemy(session_options={"class_": OneConnectionSession, "join_transaction_mode": "control_fully"})
migrate = Migrate()
