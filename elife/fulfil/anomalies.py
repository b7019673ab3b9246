"""Flagging an order for a person: anomaly_reason (the latest why) and anomaly_details
(every why, one timestamped line each). A flag is not a state change: it leaves
`version` alone so it never makes a concurrent claim lose."""
import json

import sqlalchemy as sa

from . import audit
from ..extensions import db
from ..models import Order
from ..timeutil import iso, utcnow

DETAILS_CAP = 60_000  # TEXT holds 64 KiB; stop appending before it overflows


def flag(order_number, reason, details):
    now = utcnow()
    line = f"{iso(now)} {reason}: {details if isinstance(details, str) else json.dumps(details, ensure_ascii=False, default=str)}\n"
    current = sa.func.coalesce(Order.anomaly_details, "")
    db.session.execute(
        sa.update(Order).where(Order.order_number == order_number).values(
            anomaly_reason=reason[:100],
            anomaly_details=sa.case((sa.func.length(current) < DETAILS_CAP, current + line[:2000]),
                                    else_=current),
            updated_at=now,
        ))


def resolve(order_number, actor, note, expected_reason=None):
    """A person closes an anomaly: clear anomaly_reason, stamp resolved_at and
    resolved_note, and append who and why to anomaly_details, in one UPDATE, with the
    audit row in the same transaction (the caller commits). Like `flag`, it leaves
    `version` and the statuses alone: resolving is a note, not a state change.

    `expected_reason` is the reason the person saw: if the machine flagged something
    else since, nothing is changed. Returns True when the order was resolved."""
    note = (note or "").strip()
    if not note:
        raise ValueError("a note is required to resolve an anomaly")
    now = utcnow()
    said = f" by {actor}: {note}".replace("\r", " ").replace("\n", " ")[:2000] + "\n"
    current = sa.func.coalesce(Order.anomaly_details, "")
    # "<time> resolved <the reason it had> by <actor>: <note>", the reason read by the UPDATE itself
    line = sa.literal(f"{iso(now)} resolved ") + sa.func.coalesce(Order.anomaly_reason, "") + sa.literal(said)
    where = [Order.order_number == order_number, Order.anomaly_reason.is_not(None)]
    if expected_reason is not None:
        where.append(Order.anomaly_reason == expected_reason)
    # ordered_values: MySQL evaluates SET left to right, so anomaly_details must read the
    # reason before anomaly_reason is cleared.
    result = db.session.execute(
        sa.update(Order).where(*where).ordered_values(
            (Order.anomaly_details, sa.case((sa.func.length(current) < DETAILS_CAP, current + line),
                                            else_=current)),
            (Order.anomaly_reason, None),
            (Order.resolved_at, now),
            (Order.resolved_note, note[:255]),
            (Order.updated_at, now),
        ).execution_options(synchronize_session=False))
    if result.rowcount != 1:
        return False
    audit.record_event(order_number, "anomaly_resolved", actor, note)
    return True
