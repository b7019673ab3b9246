"""`flask db upgrade` at a container's start, once however many instances start together.

Cloud Hosting may start several instances of a new version at the same moment, and each
runs this before gunicorn (deploy/container-start). The first takes a lock in the
database -- GET_LOCK on MySQL/MariaDB, held by the server, so every instance on every
host sees it; a file lock beside a SQLite file, which only one host can share --
upgrades and lets go; the others wait for it, then find nothing left to do. Each says
which it was (`event=schema_migrated` or `event=schema_current`).

A failure stops the container with one line on stderr and exit code 3, as a bad setting
does (gunicorn.conf.py): starting again would fail the same way.

    python -m elife.schema_upgrade
"""
import fcntl
import logging
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from .logs import event

log = logging.getLogger("elife.schema_upgrade")

EXIT_CANNOT_START = 3
# How long an instance waits for another's migration: far longer than any of ours takes.
LOCK_WAIT_SECONDS = 600
# One GET_LOCK wait: well inside the connection's 30 s read timeout (database.engine_options).
_LOCK_POLL_SECONDS = 5


class CannotStart(Exception):
    """What stops the container, said in one line."""


def lock_name(url):
    """GET_LOCK names are the server's, not a database's: one per database, so a staging
    and a production database on one server do not wait for each other. MySQL takes at
    most 64 characters."""
    return f"elife.schema_upgrade.{url.database or ''}"[:64]


@contextmanager
def schema_lock(engine, wait_seconds=LOCK_WAIT_SECONDS):
    """Hold the migration lock of `engine`'s database for the duration."""
    deadline = time.monotonic() + wait_seconds
    if engine.dialect.name == "mysql":
        # A connection of its own (the lock belongs to the session that took it), outside
        # any transaction: alembic's connection commits and rolls back as it likes.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            name = lock_name(engine.url)
            _wait(lambda: conn.execute(sa.text("SELECT GET_LOCK(:n, :t)"),
                                       {"n": name, "t": _LOCK_POLL_SECONDS}).scalar(), deadline, wait_seconds)
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT RELEASE_LOCK(:n)"), {"n": name})
    elif engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        with open(Path(engine.url.database).with_name(Path(engine.url.database).name + ".upgrade-lock"), "a") as f:
            def _try():
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return 1
                except BlockingIOError:
                    time.sleep(0.2)
                    return 0
            _wait(_try, deadline, wait_seconds)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
    else:
        yield


def _wait(take, deadline, wait_seconds):
    said = False
    while True:
        got = take()
        if got == 1:
            return
        if got is None:  # GET_LOCK's "an error occurred" (e.g. the session was killed)
            raise CannotStart("the database refused the migration lock (GET_LOCK returned NULL)")
        if not said:
            event(log, logging.INFO, "schema_upgrade_waiting", "another instance is migrating the schema")
            said = True
        if time.monotonic() >= deadline:
            raise CannotStart(f"another instance has held the migration lock for over {wait_seconds} s")


def _revision(engine):
    from alembic.runtime.migration import MigrationContext
    with engine.connect() as conn:
        heads = MigrationContext.configure(conn).get_current_heads()
    return ",".join(heads) or None


def upgrade(app):
    """Bring the database to the head revision under the lock; (before, after)."""
    from alembic import command
    from alembic.script import ScriptDirectory

    from .extensions import db
    config = app.extensions["migrate"].migrate.get_config()
    head = ",".join(ScriptDirectory.from_config(config).get_heads())
    with schema_lock(db.engine):
        before = _revision(db.engine)
        try:
            # What `flask db upgrade` runs, without its catch-all that exits 1.
            command.upgrade(config, "head")
        except Exception as exc:  # noqa: BLE001 -- any failure stops the start, said in one line
            try:
                at = _revision(db.engine)
            except Exception:  # noqa: BLE001 -- the database itself may be what failed
                at = "unknown"
            raise CannotStart(f"the migration to {head} failed with the database at {at or 'no revision'}: "
                              f"{_one_line(exc)} (docs/operations.md 7.1)") from exc
        after = _revision(db.engine)
    if before != after:
        event(log, logging.INFO, "schema_migrated", before=before or "none", after=after)
    else:
        event(log, logging.INFO, "schema_current", revision=after)
    return before, after


def _one_line(exc):
    orig = getattr(exc, "orig", None)  # the database's own words, without SQLAlchemy's SQL and links
    text = str(orig if orig is not None else exc).strip().splitlines()
    return f"{type(orig if orig is not None else exc).__name__}: {text[0][:300] if text else ''}"


def main():
    from . import create_app, database
    from .config import ConfigError
    from .extensions import db
    try:
        app = create_app()
        with app.app_context():
            if not database.wait_for_database(app.config["SETTINGS"]):
                raise CannotStart(f"the database cannot be reached to migrate it "
                                  f"({database.describe(db.engine.url)}; event=database_connect_failed above)")
            upgrade(app)
            db.engine.dispose()
    except (ConfigError, CannotStart) as exc:
        print(f"elife: cannot start: {exc}", file=sys.stderr, flush=True)
        return EXIT_CANNOT_START
    return 0


if __name__ == "__main__":
    sys.exit(main())
