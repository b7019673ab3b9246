"""Unbound extension objects: models and blueprints import these, never the app."""
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_sqlalchemy.session import Session


class OneConnectionSession(Session):
    """A session that keeps one database connection for its whole life (a request, a
    sweep run) instead of one per transaction.

    SQLAlchemy's default returns the connection to the pool at every commit (a ROLLBACK
    to reset it) and checks one out for the next statement (a pre-ping): two extra round
    trips per commit. A callback commits at every step of its state machine, so that was
    most of its database time (bench/notes.md). Transactions are unchanged: each
    commit() still commits, and a connection lost mid-request is replaced on its next
    use, after the rollback that run_unit's retry does anyway.
    """

    _conn = None

    def get_bind(self, mapper=None, clause=None, bind=None, **kwargs):
        if bind is not None:
            return bind
        if self._conn is None or self._conn.closed:
            # Only this session ever uses the connection, so it is never inside a
            # transaction the session did not begin (and would then not commit).
            self._conn = super().get_bind(mapper, clause, **kwargs).connect()
        return self._conn

    def close(self):
        try:
            super().close()
        finally:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()


db = SQLAlchemy(session_options={"class_": OneConnectionSession})
migrate = Migrate()
