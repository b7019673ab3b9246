"""Abuse limits shared by every worker and host: fixed-window counters in the database.

One atomic upsert per check (`count = count + 1`), so two workers counting the same
bucket at once never lose a hit. Over the limit: RateLimited, with the seconds until the window ends. A limit of 0
turns the check off.
"""
import logging
import math
import time
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from .errors import RateLimited
from .extensions import db
from .logs import event
from .models import RateLimit

log = logging.getLogger("elife.limits")
_T = RateLimit.__table__
_COUNTS = sa.select(_T.c.bucket, _T.c.count).where(_T.c.bucket.in_(sa.bindparam("buckets", expanding=True)))
_UNCOUNT = _T.update().where(_T.c.bucket == sa.bindparam("b")).values(count=_T.c.count - 1)


def _upsert_statement(dialect):
    """`count = count + 1`, inserting the row if it is new, and the counts as they now
    are where the server can say (MariaDB 10.5+, SQLite 3.35+: RETURNING). Executed
    with a list of rows: one multi-row statement, compiled once."""
    if dialect.name == "mysql":
        from sqlalchemy.dialects.mysql import insert
        stmt = insert(_T).on_duplicate_key_update(count=_T.c.count + sa.literal_column("1"))
    else:
        from sqlalchemy.dialects.sqlite import insert
        stmt = insert(_T).on_conflict_do_update(index_elements=["bucket"], set_={"count": _T.c.count + 1})
    return stmt.returning(_T.c.bucket, _T.c.count) if dialect.insert_returning else stmt


_UPSERT = {}


def _count(conn, rows):
    """Add one hit to each bucket in `rows` [(bucket, expires_at)]; {bucket: count}."""
    stmt = _UPSERT.get(conn.dialect.name)
    if stmt is None:
        stmt = _UPSERT[conn.dialect.name] = _upsert_statement(conn.dialect)
    result = conn.execute(stmt, [{"bucket": b, "count": 1, "expires_at": e} for b, e in rows])
    if not result.returns_rows:  # MySQL has no RETURNING: read them (our own writes)
        result = conn.execute(_COUNTS, {"buckets": [b for b, _ in rows]})
    return {bucket.lower(): count for bucket, count in result.all()}


def hit_all(subject, windows, commit=True):
    """Count one hit of `subject` in each window [(name, limit, seconds)], checked in
    order; raise RateLimited at the first one over its limit. The windows after it are not
    counted (a customer over the minute limit does not spend the day's).

    One statement however many windows (two on MySQL, which lacks RETURNING).
    commit=False leaves the counts in the open transaction for the caller to commit with
    its own writes (a rejected hit is committed here all the same: the rejected hit counts)."""
    now = time.time()
    active = []  # (bucket, name, limit, end)
    for name, limit, seconds in windows:
        if limit and limit > 0:
            bucket, end = _bucket(name, subject, seconds, now)
            active.append((bucket, name, limit, end))
    if not active:
        return
    conn = db.session.connection()
    counts = _count(conn, [(b, datetime.fromtimestamp(end, timezone.utc).replace(tzinfo=None))
                           for b, _, _, end in active])
    for i, (bucket, name, limit, end) in enumerate(active):
        if counts[bucket] > limit:
            for later in active[i + 1:]:
                conn.execute(_UNCOUNT, {"b": later[0]})
            db.session.commit()
            retry_after = max(1, math.ceil(end - now))
            event(log, logging.WARNING, "rate_limited", limit=name, subject=subject,
                  count=counts[bucket], max=limit)
            raise RateLimited("rate_limited", f"too many requests ({name}); try again in {retry_after} s",
                              retry_after=retry_after)
    if commit:
        db.session.commit()


def _bucket(name, subject, seconds, now):
    """The window's row and when it ends. Lower case: MariaDB compares buckets ignoring
    case (an IPv6 address in either case is one subject), and counts are matched back by name."""
    window = int(now // seconds)
    return f"{name}:{subject}:{seconds}:{window}".lower()[:128], (window + 1) * seconds


_COUNT = sa.select(_T.c.count).where(_T.c.bucket == sa.bindparam("b"))


def check(name, subject, limit, seconds):
    """RateLimited if `subject` is already over `limit` in the current window; counts
    nothing (for a limit counted only on failure, checked before every attempt)."""
    if not limit or limit <= 0:
        return
    now = time.time()
    bucket, end = _bucket(name, subject, seconds, now)
    count = db.session.connection().execute(_COUNT, {"b": bucket}).scalar()
    db.session.commit()
    if count is not None and count > limit:
        retry_after = max(1, math.ceil(end - now))
        raise RateLimited("rate_limited", f"too many requests ({name}); try again in {retry_after} s",
                          retry_after=retry_after)


def hit(name, subject, limit, window_seconds, commit=True):
    """Count one hit of `name` for `subject`; raise RateLimited when over `limit` in the window."""
    hit_all(subject, [(name, limit, window_seconds)], commit)


def orders_by_user(settings, user_id, commit=True):
    """Both windows; commit=False leaves them for orders.create to commit with the order."""
    hit_all(f"u{user_id}", [("orders-minute", settings.LIMIT_ORDERS_PER_MINUTE, 60),
                            ("orders-day", settings.LIMIT_ORDERS_PER_DAY, 86400)], commit)


def logins_by_address(settings, address):
    hit("logins-minute", address, settings.LIMIT_LOGINS_PER_MINUTE, 60)


def admin_locked_out(settings, address):
    """An address past LIMIT_ADMIN_FAILURES_PER_MINUTE is refused for the rest of the
    minute, the right token too: it is guessing."""
    check("admin-failures", address, settings.LIMIT_ADMIN_FAILURES_PER_MINUTE, 60)


def admin_failure(settings, address):
    """One wrong admin token from `address`; RateLimited once it is past the limit."""
    hit("admin-failures", address, settings.LIMIT_ADMIN_FAILURES_PER_MINUTE, 60)


def notices_by_order(settings, order_number):
    """Payment notices stored per order number per hour (anyone can send them)."""
    hit("notices-hour", order_number, settings.LIMIT_NOTICES_PER_ORDER_PER_HOUR, 3600)


def tally(name, subject, seconds):
    """Count one hit in the window with no limit, committed; the count so far."""
    now = time.time()
    bucket, end = _bucket(name, subject, seconds, now)
    counts = _count(db.session.connection(),
                    [(bucket, datetime.fromtimestamp(end, timezone.utc).replace(tzinfo=None))])
    db.session.commit()
    return counts[bucket]


def payments_by_order(settings, order_number):
    hit("payments-hour", order_number, settings.LIMIT_PAYMENTS_PER_ORDER_HOUR, 3600)


def purge_expired(now, batch=1000):
    """Housekeeping (the sweep calls it): drop windows that have ended."""
    ids = db.session.execute(sa.select(RateLimit.bucket).where(RateLimit.expires_at < now - timedelta(seconds=1))
                             .limit(batch)).scalars().all()
    if ids:
        db.session.execute(sa.delete(RateLimit).where(RateLimit.bucket.in_(ids)))
    db.session.commit()
    return len(ids)
