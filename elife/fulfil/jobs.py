"""The timed jobs, each one call: the compensation sweep, one day's reconciliation, the
purge of old payment notices. WeChat Cloud Hosting has no cron and scales to zero
instances, so its timed triggers call them over HTTP (api/jobs.py); on a host, cron runs
the same sweep and reconciliation as commands (scripts/sweep, scripts/reconcile).

**One at a time, across every instance.** Each job has a lease row in job_locks, taken
by one conditional UPDATE whose rowcount decides (or by the INSERT of the job's first
row, which only one can win) and given back when the job ends. A second call while it
is held is refused with `job_running`. An instance killed mid-job holds the lease until
it expires -- the job's budget and a margin -- and the next call after that carries on:
what the killed run had claimed is settled or left exactly as when the cron sweep is
killed (recharge.py and the sweep's selections see to it).

**Within the budget.** Cloud Hosting ends a request at 60 s. The sweep starts no row it
could not finish within JOB_TIME_BUDGET_SECONDS -- its last may wait the operator's
connect and read timeouts -- and says `more` when it stopped with work left; the next
trigger carries on. The purge deletes in batches until the budget is spent.
"""
import logging
import os
import socket
import time
import uuid
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from ..clients.wechat import BillFormatError, BillNotReady, WeChatRejected, WeChatUnavailable
from ..errors import Conflict, Unavailable
from ..extensions import db
from ..logs import event
from ..models import JobLock
from ..timeutil import utcnow
from . import reconcile as reconciliation
from . import sweep as compensation

log = logging.getLogger("elife.jobs")

JOBS = ("sweep", "reconcile", "purge")
LEASE_MARGIN_SECONDS = 10  # past the budget: housekeeping, the answer, a slow commit
BILL_RETRY_SECONDS = 600   # WeChat makes the day's bill in the morning, China time
_L = JobLock.__table__


def _holder():
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _take(name, holder, lease_seconds):
    """True if `holder` now holds the job's lease. Each statement its own transaction,
    on a connection of its own: the job's session commits as it goes."""
    now = utcnow()
    values = dict(holder=holder, locked_at=now, expires_at=now + timedelta(seconds=lease_seconds))
    with db.engine.begin() as conn:
        won = conn.execute(_L.update().where(_L.c.name == name, sa.or_(_L.c.holder.is_(None), _L.c.expires_at < now))
                           .values(**values)).rowcount == 1
    if won:
        return True
    try:
        with db.engine.begin() as conn:  # the job's first run: its row is not there yet
            conn.execute(_L.insert().values(name=name, **values))
        return True
    except IntegrityError:
        return False


def _give_back(name, holder):
    with db.engine.begin() as conn:
        kept = conn.execute(_L.update().where(_L.c.name == name, _L.c.holder == holder)
                            .values(holder=None, expires_at=None)).rowcount == 1
    if not kept:  # ran past its lease, and another instance has taken it since
        event(log, logging.WARNING, "job_lease_lost", job=name, holder=holder)


def holder_of(name):
    """(holder, expires_at) of a job's lease, or (None, None)."""
    with db.engine.connect() as conn:
        row = conn.execute(sa.select(_L.c.holder, _L.c.expires_at).where(_L.c.name == name)).first()
    return (row.holder, row.expires_at) if row is not None and row.holder is not None else (None, None)


@contextmanager
def held(name, lease_seconds):
    """Run the body holding `name`'s lease; Conflict `job_running` when another holds it."""
    holder = _holder()
    if not _take(name, holder, lease_seconds):
        other, until = holder_of(name)
        left = max(1, int((until - utcnow()).total_seconds()) + 1) if until is not None else 1
        event(log, logging.INFO, "job_running", job=name, holder=other or "", retry_after=left)
        raise Conflict("job_running", f"the {name} job is running on another instance; its lease ends "
                                      f"within {left} s", retry_after=left)
    started = time.monotonic()
    event(log, logging.INFO, "job_started", job=name, holder=holder)
    try:
        yield holder
    finally:
        _give_back(name, holder)
        event(log, logging.INFO, "job_done", job=name, seconds=f"{time.monotonic() - started:.2f}")


def _budget(s):
    return s.JOB_TIME_BUDGET_SECONDS


def sweep(svc):
    """The sweep within the budget: its Summary (stopped_early: there may be more)."""
    s = svc.settings
    # The last row started may wait the operator's whole connect and read timeouts.
    window = _budget(s) - (s.UNITEL_CONNECT_TIMEOUT + s.UNITEL_READ_TIMEOUT)
    within = replace(svc, settings=replace(s, SWEEP_MAX_SECONDS=min(s.SWEEP_MAX_SECONDS, window)))
    with held("sweep", _budget(s) + LEASE_MARGIN_SECONDS):
        return compensation.run(within)


def reconcile(svc, day=None):
    """One bill day (default: yesterday, China time); the reconcile.Result. WeChat's bill
    not made yet is Unavailable `bill_not_ready` (with when to ask again)."""
    s = svc.settings
    day = day or reconciliation.default_day()
    with held("reconcile", max(_budget(s), s.WECHAT_BILL_TIMEOUT) + LEASE_MARGIN_SECONDS):
        try:
            return reconciliation.run(svc, day, actor="reconcile-job")
        except BillNotReady as exc:
            raise Unavailable("bill_not_ready", f"{exc}; try again later", retry_after=BILL_RETRY_SECONDS) from None
        except WeChatUnavailable as exc:
            raise Unavailable("wechat_unavailable", f"WeChat could not be asked for the bill: {exc}",
                              retry_after=60) from None
        except WeChatRejected as exc:
            raise Unavailable("wechat_rejected", f"WeChat refused the bill of {day:%Y%m%d}: {exc}") from None
        except BillFormatError as exc:
            raise Unavailable("bill_unreadable", f"the bill of {day:%Y%m%d} is not in WeChat's format: "
                                                 f"{exc}") from None


def purge(svc):
    """Payment notices past NOTICE_RETENTION_DAYS, in batches until the budget is spent:
    (how many went, the cutoff day, whether some are left)."""
    s = svc.settings
    now = utcnow()
    deadline = time.monotonic() + _budget(s)
    gone, more = 0, True
    with held("purge", _budget(s) + LEASE_MARGIN_SECONDS):
        while time.monotonic() < deadline:
            n = compensation.purge_old_notices(s, now, batches=1)
            gone += n
            if n < compensation.NOTICE_PURGE_BATCH:
                more = False
                break
    return gone, (now - timedelta(days=s.NOTICE_RETENTION_DAYS)).date(), more
