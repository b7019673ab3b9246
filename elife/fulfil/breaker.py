"""The operator breaker, shared by every worker and host: one small row per operator.

After BREAKER_FAILURES operator calls in a row that ended in a 5xx, a connection
failure or a timeout, the breaker opens for BREAKER_COOLDOWN_SECONDS: no new orders or
payments are taken (money we could not deliver), and no paid order is claimed (it waits,
unrefunded, for the sweep). After the cooldown it half-opens: orders are taken again,
and the next operator answer closes it (a success, or a definite refusal: the operator
is there) or opens it again. Each change is one conditional UPDATE; the process whose
UPDATE matched logs it (breaker_open, breaker_closed).
"""
import logging
import math
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from ..clients import unitel
from ..errors import Unavailable
from ..extensions import db
from ..logs import event
from ..models import OperatorBreaker
from ..timeutil import iso, utcnow

log = logging.getLogger("elife.breaker")
OPERATOR = "UNITEL"
CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"

_B = OperatorBreaker.__table__
_READ = sa.select(_B.c.failures, _B.c.opened_at).where(_B.c.operator == sa.bindparam("op"))


def is_outage(answer):
    """A call that says nothing of the operator but that it is not there: a timeout, a
    connection failure, a 5xx. An answer in the operator's own words is not one."""
    return answer.outcome == unitel.UNKNOWN and (answer.http_status is None or answer.http_status >= 500)


def state(settings, operator=OPERATOR, now=None):
    """(closed | open | half_open, opened_at, seconds left of the cooldown)."""
    row = db.session.connection().execute(_READ, {"op": operator}).first()
    if row is None or row.opened_at is None:
        return CLOSED, None, 0
    left = (row.opened_at + timedelta(seconds=settings.BREAKER_COOLDOWN_SECONDS)
            - (now or utcnow())).total_seconds()
    return (OPEN if left > 0 else HALF_OPEN), row.opened_at, max(0, left)


def allows_submit(settings, operator=OPERATOR):
    return state(settings, operator)[0] != OPEN


def refuse_if_open(settings, operator=OPERATOR):
    """For whatever takes a customer's money: 503 operator_unavailable while open."""
    status, opened_at, left = state(settings, operator)
    if status == OPEN:
        raise Unavailable("operator_unavailable",
                          f"the operator ({operator.title()}) is not answering since {iso(opened_at)}; "
                          "try again in a minute", retry_after=max(1, math.ceil(left)))


def record(settings, answer, operator=OPERATOR):
    """Count one operator call's outcome; committed."""
    if is_outage(answer):
        _failure(settings, operator)
    elif answer.outcome in (unitel.SUCCESS, unitel.FAILED, unitel.NOT_FOUND, unitel.PENDING):
        _answered(operator)
    db.session.commit()


def _failure(s, operator):
    conn = db.session.connection()
    if conn.execute(_B.update().where(_B.c.operator == operator)
                    .values(failures=_B.c.failures + 1, updated_at=utcnow())).rowcount == 0:
        _create(operator, failures=1)
    now = utcnow()
    cutoff = now - timedelta(seconds=s.BREAKER_COOLDOWN_SECONDS)
    opened = conn.execute(
        _B.update()
        .where(_B.c.operator == operator, _B.c.failures >= s.BREAKER_FAILURES,
               sa.or_(_B.c.opened_at.is_(None), _B.c.opened_at <= cutoff))  # closed, or half-open
        .values(opened_at=now, updated_at=now)).rowcount == 1
    if opened:
        event(log, logging.ERROR, "breaker_open", operator=operator, failures=s.BREAKER_FAILURES,
              cooldown=s.BREAKER_COOLDOWN_SECONDS,
              message="the operator is not answering: new orders are refused, paid ones wait")


def _answered(operator):
    conn = db.session.connection()
    now = utcnow()
    if conn.execute(_B.update().where(_B.c.operator == operator, _B.c.opened_at.is_not(None))
                    .values(opened_at=None, failures=0, updated_at=now)).rowcount == 1:
        event(log, logging.WARNING, "breaker_closed", operator=operator,
              message="the operator answers again: orders are taken, the sweep delivers the paid ones")
    conn.execute(_B.update().where(_B.c.operator == operator, _B.c.failures > 0)
                 .values(failures=0, updated_at=now))


def _create(operator, failures):
    try:
        with db.session.begin_nested():
            db.session.connection().execute(_B.insert(), {"operator": operator, "failures": failures,
                                                          "opened_at": None, "updated_at": utcnow()})
    except IntegrityError:  # another process created it a moment ago: count on its row
        db.session.connection().execute(_B.update().where(_B.c.operator == operator)
                                        .values(failures=_B.c.failures + failures))
