"""Customer identity: POST /auth/login, then signed, expiring tokens (itsdangerous), or
WeChat Cloud Hosting's X-WX-OPENID header when TRUST_WX_HEADERS says the platform sits
in front of us (and the request carries the platform's X-WX-SOURCE). Anyone who can reach
the service directly can send those headers too: the flag needs a service reachable
only through the platform."""
import logging
import re

from flask import Blueprint, g, jsonify, request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from .. import limits, services
from ..clients.wechat import WeChatRejected, WeChatUnavailable
from .errors import ApiError
from ..logs import event
from ..shop.customers import Customer, openid_of, user_for_openid
from .common import client_ip, json_object, string_field

bp = Blueprint("auth", __name__, url_prefix="/auth")
LOGIN_CODE = re.compile(r"[!-~]{1,128}")  # wx.login codes are printable ASCII, no spaces
log = logging.getLogger("elife.auth")
_SALT = "elife.customer-token.v1"


@bp.post("/login")
def login():
    running = services.current()
    limits.logins_by_address(running.settings, client_ip())
    code = string_field(json_object(), "code", 128, pattern=LOGIN_CODE)
    try:
        openid = running.wechat.code2session(code)
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
    """The customer tokens' signer, keyed by the running app's SECRET_KEY."""
    return URLSafeTimedSerializer(services.current().settings.SECRET_KEY, salt=_SALT)


def issue_token(user):
    """(token, seconds it is valid) for a user, as POST /auth/login answers (the bench
    signs its customers' tokens with it too)."""
    return _serializer().dumps({"uid": user.id, "oid": user.openid}), services.current().settings.TOKEN_TTL_SECONDS


def current_user():
    """The caller, or a 401. Cached on `g` for the request."""
    if "user" in g:
        return g.user
    s = services.current().settings
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():  # RFC 7235: the scheme is case-insensitive
        g.user = _user_from_token(s, token.strip())
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


def _user_from_token(s, token):
    try:
        data = _serializer().loads(token, max_age=s.TOKEN_TTL_SECONDS)
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
    openid = openid_of(uid)
    if openid is None or openid != data.get("oid"):
        raise ApiError(401, "invalid_token", "the token is not valid")
    return Customer(uid, openid)
