"""Abuse limits shared by every worker and host: fixed-window counters in the database.

One atomic upsert per check (`count = count + 1`), so two workers counting the same
bucket at once never lose a hit. Over the limit: 429 with Retry-After. A limit of 0
turns the check off.
"""
import logging
import math
import time
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from flask import current_app

from .errors import ApiError
from .extensions import db
from .logs import event
from .models import RateLimit

log = logging.getLogger("elife.limits")


def _upsert(bucket, expires_at, commit=True):
    dialect = db.engine.dialect.name
    values = {"bucket": bucket, "count": 1, "expires_at": expires_at}
    if dialect == "mysql":
        from sqlalchemy.dialects.mysql import insert
        stmt = insert(RateLimit).values(**values)
        stmt = stmt.on_duplicate_key_update(count=RateLimit.count + 1)
    else:
        from sqlalchemy.dialects.sqlite import insert
        stmt = insert(RateLimit).values(**values)
        stmt = stmt.on_conflict_do_update(index_elements=["bucket"], set_={"count": RateLimit.count + 1})
    db.session.execute(stmt)
    n = db.session.execute(sa.select(RateLimit.count).where(RateLimit.bucket == bucket)).scalar()
    if commit:
        db.session.commit()
    return n


def hit(name, subject, limit, window_seconds, commit=True):
    """Count one hit of `name` for `subject`; raise 429 when over `limit` in the window.

    commit=False leaves the count in the open transaction for the caller to commit
    (a 429 is committed here all the same: the rejected hit counts)."""
    if not limit or limit <= 0:
        return
    now = time.time()
    window = int(now // window_seconds)
    bucket = f"{name}:{subject}:{window_seconds}:{window}"[:128]
    expires = datetime.fromtimestamp((window + 1) * window_seconds, timezone.utc).replace(tzinfo=None)
    count = _upsert(bucket, expires, commit)
    if count > limit:
        if not commit:
            db.session.commit()
        retry_after = max(1, math.ceil((window + 1) * window_seconds - now))
        event(log, logging.WARNING, "rate_limited", limit=name, subject=subject, count=count, max=limit)
        raise ApiError(429, "rate_limited",
                       f"too many requests ({name}); try again in {retry_after} s",
                       headers={"Retry-After": str(retry_after)})


def settings():
    return current_app.config["SETTINGS"]


def orders_by_user(user_id):
    """Both windows in one transaction: one commit per order, not two (scripts/bench).
    As before, a hit over the minute limit is not counted against the day."""
    s = settings()
    hit("orders-minute", f"u{user_id}", s.LIMIT_ORDERS_PER_MINUTE, 60, commit=False)
    hit("orders-day", f"u{user_id}", s.LIMIT_ORDERS_PER_DAY, 86400, commit=False)
    db.session.commit()


def logins_by_address(address):
    hit("logins-minute", address, settings().LIMIT_LOGINS_PER_MINUTE, 60)


def payments_by_order(order_number):
    hit("payments-hour", order_number, settings().LIMIT_PAYMENTS_PER_ORDER_HOUR, 3600)


def purge_expired(now, batch=1000):
    """Housekeeping (the sweep calls it): drop windows that have ended."""
    ids = db.session.execute(sa.select(RateLimit.bucket).where(RateLimit.expires_at < now - timedelta(seconds=1))
                             .limit(batch)).scalars().all()
    if ids:
        db.session.execute(sa.delete(RateLimit).where(RateLimit.bucket.in_(ids)))
    db.session.commit()
    return len(ids)
