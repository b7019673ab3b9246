"""scripts/faults in its reduced form (MariaDB only), and the bug its full run found.

The full fault-injection suite (MariaDB restart included) is run by CI as
`scripts/faults`; here `--quick` (20 orders, no restart of the shared server) proves
the suite itself still runs and is green, in under a minute.
"""
import re
import subprocess

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from conftest import REPO, TEST_DB_URL, mysql_only
from elife import services
from elife.config import normalize_database_url
from elife.extensions import db

SUMMARY = re.compile(r"^faults: (\d+) injected, orders: (\d+), submitted twice: (\d+), lost: (\d+)$", re.M)


@mysql_only
def test_quick_fault_run_submits_nothing_twice_and_loses_nothing():
    url = sa.engine.make_url(normalize_database_url(TEST_DB_URL))
    server = url.set(database="", query={}).render_as_string(hide_password=False)
    r = subprocess.run([str(REPO / "scripts" / "faults"), "--quick", "--server", server,
                        "--database", f"{url.database}_faults"],
                       cwd=REPO, capture_output=True, text=True, timeout=240)
    found = SUMMARY.findall(r.stdout)
    assert found, r.stdout[-3000:] + r.stderr[-2000:]
    injected, orders, twice, lost = map(int, found[-1])
    assert (twice, lost) == (0, 0), r.stdout[-3000:]
    assert orders == 20 and injected >= 20
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]


@mysql_only
def test_a_connection_lost_after_the_last_commit_is_no_500(app):
    """Found by scripts/faults: when the connection died after a request's last commit,
    Flask-SQLAlchemy's teardown rollback raised and gunicorn answered a bare 500 for an
    order already created. The session is now closed without raising."""
    killer = sa.create_engine(app.config["SQLALCHEMY_DATABASE_URI"], poolclass=NullPool)
    try:
        with app.app_context():  # a read after the last commit leaves a transaction open
            cid = db.session.execute(sa.text("SELECT CONNECTION_ID()")).scalar()
            with killer.connect() as c:
                c.execute(sa.text(f"KILL CONNECTION {int(cid)}"))
        with app.app_context():  # leaving the context did not raise; the pool recovers
            assert db.session.execute(sa.text("SELECT 1")).scalar() == 1
    finally:
        killer.dispose()


def test_the_sweep_purges_idempotency_keys_past_their_24_hours(app):
    """Found by scripts/faults (error.log: housekeeping_error on every sweep): sweep.py's
    `from . import orders` got elife.api.orders -- elife/__init__ binds that name to the
    blueprint module -- so the purge raised AttributeError and no key was ever dropped."""
    from datetime import timedelta

    from elife.fulfil import sweep
    from elife.models import IdempotencyKey
    from elife.timeutil import utcnow

    with app.app_context():
        db.session.add_all([IdempotencyKey(user_id=1, idem_key="old", created_at=utcnow() - timedelta(hours=25)),
                            IdempotencyKey(user_id=1, idem_key="new", created_at=utcnow())])
        db.session.commit()
        sweep.run(services.current())
        left = db.session.execute(sa.select(IdempotencyKey.idem_key)).scalars().all()
        assert left == ["new"]
