"""Audit rows: calls to the operator and to WeChat's refund, and decisions about orders."""
import sqlalchemy as sa

from ..extensions import db
from ..logs import current_request_id
from ..models import OperatorCall, OrderEvent
from ..timeutil import utcnow


_CALLS = OperatorCall.__table__


def record_call(order, kind, outcome, detail="", http_status=None, latency_ms=None):
    """One row of operator_calls, in the open transaction (the caller commits); its id.
    http_request_id: the X-Request-Id of the HTTP request that made the call, if any."""
    return db.session.connection().execute(_CALLS.insert(), {
        "order_number": order.order_number, "request_id": order.order_number,
        "msisdn": order.phone_number, "kind": kind, "outcome": outcome, "http_status": http_status,
        "latency_ms": latency_ms, "answer": (detail or "")[:1000] or None,
        "created_at": utcnow(), "http_request_id": current_request_id()}).inserted_primary_key[0]


def _said(answer):
    return f"{answer.code} {answer.message}".strip()


def record_answer(order, kind, answer):
    record_call(order, kind, answer.outcome, _said(answer), answer.http_status, answer.latency_ms)


def insert_sending(order, kind, marker=None):
    """The row of a submit (outcome 'sent'), in the open transaction: the caller commits
    it before the submit is sent -- with the claim that allows it, for a first submit --
    so every request that leaves us has its row even when the database fails before the
    answer is written. Returns the row's id for record_outcome.

    `marker`, unique to one claim, stands in the answer until the answer comes: a claim
    repeated after its commit's acknowledgement was lost finds its own row by it."""
    return record_call(order, kind, "sent", marker and f"claim {marker}")


def sent_with_marker(order_number, marker):
    """The id of the 'sent' row insert_sending wrote with `marker`, or None."""
    return db.session.connection().execute(_BY_MARKER, {"n": order_number, "a": f"claim {marker}"}).scalar()


_BY_MARKER = (sa.select(_CALLS.c.id)
              .where(_CALLS.c.order_number == sa.bindparam("n"), _CALLS.c.outcome == "sent",
                     _CALLS.c.answer == sa.bindparam("a")))


def record_sending(order, kind):
    """insert_sending, committed at once. Not retried: a repeat after a lost commit
    acknowledgement would leave two rows for one request."""
    call_id = insert_sending(order, kind)
    db.session.commit()
    return call_id


def record_outcome(call_id, answer):
    """The answer to a submit, onto its row (the caller commits: with the settle)."""
    db.session.connection().execute(_CALLS.update().where(_CALLS.c.id == call_id).values(
        outcome=answer.outcome, http_status=answer.http_status, latency_ms=answer.latency_ms,
        answer=_said(answer)[:1000] or None))


def record_event(order_number, event, actor, note=None):
    db.session.add(OrderEvent(order_number=order_number, event=event, actor=actor[:64],
                              note=(note or "")[:4000] or None))
