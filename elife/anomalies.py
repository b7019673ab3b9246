"""Flagging an order for a person: anomaly_reason (the latest why) and anomaly_details
(every why, one timestamped line each). A flag is not a state change: it leaves
`version` alone so it never makes a concurrent claim lose."""
import json

import sqlalchemy as sa

from .extensions import db
from .models import Order
from .timeutil import iso, utcnow

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
