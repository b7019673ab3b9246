"""Customer identity: POST /auth/login, then signed, expiring tokens (itsdangerous), or
WeChat Cloud Hosting's X-WX-OPENID header when TRUST_WX_HEADERS says the platform sits
in front of us (and the request carries the platform's X-WX-SOURCE). Anyone who can reach
the service directly can send those headers too: the flag needs a service reachable
only through the platform."""
import logging
import re
from dataclasses import dataclass

import sqlalchemy as sa
from flask import Blueprint, g, jsonify, request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from .. import config
from ..clients.wechat import WeChatClient, WeChatRejected, WeChatUnavailable
from .errors import ApiError
from ..extensions import db
from ..logs import event
from ..models import User
from ..shop import limits
from .common import client_ip, json_object, string_field

bp = Blueprint("auth", __name__, url_prefix="/auth")
LOGIN_CODE = re.compile(r"[!-~]{1,128}")  # wx.login codes are printable ASCII, no spaces
log = logging.getLogger("elife.auth")
_SALT = "elife.customer-token.v1"
_OPENID = sa.select(User.__table__.c.openid).where(User.__table__.c.id == sa.bindparam("uid"))


@dataclass(frozen=True)
class Customer:
    """The caller as a token names them, checked against the users table."""
    id: int
    openid: str


@bp.post("/login")
def login():
    limits.logins_by_address(client_ip())
    code = string_field(json_object(), "code", 128, pattern=LOGIN_CODE)
    try:
        openid = WeChatClient(config.current()).code2session(code)
    except WeChatRejected as e:
        event(log, logging.INFO, "login_rejected", errcode=e.code)
        raise ApiError(401, "invalid_code", "WeChat did not accept this login code") from None
    except WeChatUnavailable as e:
        event(log, logging.WARNING, "login_wechat_unavailable", error=str(e))
        raise ApiError(502, "wechat_unavailable", "WeChat could not be reached; try again") from None
    user = user_for_openid(openid)
    token, ttl = issue_token(user)
    return jsonify({"token": token, "expiresIn": ttl})


def _serializer():
    return URLSafeTimedSerializer(config.current().SECRET_KEY, salt=_SALT)


def issue_token(user):
    s = config.current()
    return _serializer().dumps({"uid": user.id, "oid": user.openid}), s.TOKEN_TTL_SECONDS


def user_for_openid(openid):
    """The user for a WeChat openid, created on first sight (race-safe)."""
    user = User.query.filter_by(openid=openid).one_or_none()
    if user:
        return user
    from sqlalchemy.exc import IntegrityError
    try:
        user = User(openid=openid)
        db.session.add(user)
        db.session.commit()
        event(log, logging.INFO, "user_created", user=user.id)
        return user
    except IntegrityError:  # another request created it a moment ago
        db.session.rollback()
        return User.query.filter_by(openid=openid).one()


def current_user():
    """The caller, or a 401. Cached on `g` for the request."""
    if "user" in g:
        return g.user
    s = config.current()
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():  # RFC 7235: the scheme is case-insensitive
        g.user = _user_from_token(token.strip(), s.TOKEN_TTL_SECONDS)
        return g.user
    openid = request.headers.get("X-WX-OPENID", "")
    if s.TRUST_WX_HEADERS and openid:
        _check_platform(s)
        if len(openid) > 64:
            raise ApiError(401, "invalid_openid", "X-WX-OPENID is not a WeChat openid")
        g.user = user_for_openid(openid)
        return g.user
    raise ApiError(401, "missing_token", "log in first: Authorization: Bearer <token>")


def _check_platform(s):
    """X-WX-OPENID is a login only as Cloud Hosting forwards it: with X-WX-SOURCE, and
    with X-WX-ENV naming our environment when the platform sends it."""
    env = request.headers.get("X-WX-ENV")
    if not request.headers.get("X-WX-SOURCE"):
        why = "X-WX-OPENID without X-WX-SOURCE"
    elif env is not None and env != s.WECHAT_ENV_ID:
        why = "X-WX-ENV is not this service's environment"
    else:
        return
    event(log, logging.WARNING, "wx_openid_refused", why, ip=client_ip())
    raise ApiError(401, "invalid_openid", f"{why}: not a request through WeChat Cloud Hosting")


def _user_from_token(token, ttl):
    try:
        data = _serializer().loads(token, max_age=ttl)
    except SignatureExpired:
        raise ApiError(401, "token_expired", "the token has expired; log in again") from None
    except BadSignature:
        raise ApiError(401, "invalid_token", "the token is not valid") from None
    if not isinstance(data, dict):
        raise ApiError(401, "invalid_token", "the token is not valid")
    uid = data.get("uid")
    if not isinstance(uid, int) or isinstance(uid, bool):
        raise ApiError(401, "invalid_token", "the token is not valid")
    # The openid too: a token must not pass for whoever holds its id after a restore.
    openid = db.session.connection().execute(_OPENID, {"uid": uid}).scalar()
    if openid is None or openid != data.get("oid"):
        raise ApiError(401, "invalid_token", "the token is not valid")
    return Customer(uid, openid)
