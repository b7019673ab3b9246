"""Customers: one row of `users` per WeChat openid, made on first sight. Who the caller
is (a token, or Cloud Hosting's header) is api/auth.py's business; this is who they are."""
import logging
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..logs import event
from ..models import User

log = logging.getLogger("elife.auth")  # the logger user_created has always been logged under
_OPENID = sa.select(User.__table__.c.openid).where(User.__table__.c.id == sa.bindparam("uid"))


@dataclass(frozen=True)
class Customer:
    """The caller as a token names them, checked against the users table."""
    id: int
    openid: str


def user_for_openid(openid):
    """The user for a WeChat openid, created on first sight (race-safe)."""
    user = User.query.filter_by(openid=openid).one_or_none()
    if user:
        return user
    try:
        user = User(openid=openid)
        db.session.add(user)
        db.session.commit()
        event(log, logging.INFO, "user_created", user=user.id)
        return user
    except IntegrityError:  # another request created it a moment ago
        db.session.rollback()
        return User.query.filter_by(openid=openid).one()


def openid_of(user_id):
    """The openid of a user id, or None when there is no such user."""
    return db.session.connection().execute(_OPENID, {"uid": user_id}).scalar()
