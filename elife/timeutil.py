"""Time is naive UTC in the database; one helper so nobody reaches for local time."""
from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

# Millisecond precision on MySQL/MariaDB (plain DATETIME drops fractions), so recharge
# delays can be measured below a second.
Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=3), "mysql", "mariadb")


def utcnow():
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def iso(dt):
    if dt is None:
        return None
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
