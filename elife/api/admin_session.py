"""Who may use /admin, for browsers: the login cookie, its CSRF tokens and signed page
messages. API clients send `Authorization: Bearer <ADMIN_TOKEN>` instead and need none
of this.

The cookie holds an itsdangerous-signed value (keyed by SECRET_KEY, salt "elife.admin",
valid 12 hours): a random session id, the name the operator typed (for the audit
trail), and a fingerprint of ADMIN_TOKEN, so that changing ADMIN_TOKEN ends every
browser session. The session id is also a row of admin_sessions: logging out deletes
it, so a copied cookie dies with the logout rather than 12 hours later. A CSRF token is
the session id signed again under its own salt: a form posted with the cookie must
carry the token made for that cookie.
"""
import hashlib
import hmac
import secrets
from datetime import timedelta

import sqlalchemy as sa
from flask import request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from .. import services
from ..extensions import db
from ..models import AdminSession
from ..timeutil import utcnow
from ..validators import clean_name

COOKIE_NAME = "elife_admin"
COOKIE_PATH = "/admin"
MAX_AGE = 12 * 3600
MESSAGE_MAX_AGE = 10 * 60

_SALT = "elife.admin"
_CSRF_SALT = "elife.admin.csrf"
_MESSAGE_SALT = "elife.admin.message"


def _settings():
    return services.current().settings


def _serializer(salt):
    return URLSafeTimedSerializer(_settings().SECRET_KEY, salt=salt)


def token_matches(given):
    """Constant-time comparison with ADMIN_TOKEN; an unset ADMIN_TOKEN matches nothing."""
    expected = _settings().ADMIN_TOKEN
    if not expected or not isinstance(given, str):
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def _token_fingerprint():
    """Not the token, nor a plain hash of it: an HMAC under SECRET_KEY."""
    s = _settings()
    return hmac.new(s.SECRET_KEY.encode(), s.ADMIN_TOKEN.encode(), hashlib.sha256).hexdigest()[:16]


def actor_for(name):
    name = clean_name(name)
    return f"admin:{name}" if name else "admin"


def form_actor():
    """Who does an admin action: the name the posted form gives, as the audit trail writes it."""
    return actor_for(request.form.get("name", ""))


# -- the login cookie ------------------------------------------------------------------------

_S = AdminSession.__table__
_LIVE = sa.select(_S.c.sid).where(_S.c.sid == sa.bindparam("sid"), _S.c.expires_at > sa.bindparam("now"))


def new_cookie_value(name=""):
    """Start a session (its row, committed) and return the cookie's value."""
    sid, now = secrets.token_urlsafe(18), utcnow()
    db.session.connection().execute(_S.insert(), {"sid": sid, "actor": actor_for(name)[:64], "created_at": now,
                                                  "expires_at": now + timedelta(seconds=MAX_AGE)})
    db.session.commit()
    return _serializer(_SALT).dumps({"sid": sid, "name": clean_name(name), "key": _token_fingerprint()})


def revoke(session):
    """Logout: the session's row goes, and with it every copy of its cookie."""
    db.session.connection().execute(_S.delete().where(_S.c.sid == session["sid"]))
    db.session.commit()


def read_cookie(value):
    """The session for a cookie value, or None when it is missing, forged, expired, was
    issued for another ADMIN_TOKEN or was logged out."""
    if not value or not _settings().ADMIN_TOKEN:
        return None
    try:
        data = _serializer(_SALT).loads(value, max_age=MAX_AGE)
    except BadSignature:  # SignatureExpired is a BadSignature
        return None
    if not isinstance(data, dict) or not isinstance(data.get("sid"), str):
        return None
    if not hmac.compare_digest(str(data.get("key", "")), _token_fingerprint()):
        return None
    if db.session.connection().execute(_LIVE, {"sid": data["sid"], "now": utcnow()}).first() is None:
        return None  # logged out (or purged)
    return {"sid": data["sid"], "name": clean_name(data.get("name", ""))}


# -- CSRF ------------------------------------------------------------------------------------

def csrf_token(session):
    return _serializer(_CSRF_SALT).dumps(session["sid"])


def csrf_ok(session, token):
    if not session or not token or not isinstance(token, str):
        return False
    try:
        sid = _serializer(_CSRF_SALT).loads(token, max_age=MAX_AGE)
    except BadSignature:
        return False
    return isinstance(sid, str) and hmac.compare_digest(sid, session["sid"])


# -- messages shown after a redirect ---------------------------------------------------------

def sign_message(text, kind="ok"):
    """A message for the page we redirect to, signed so that nobody can make the admin
    page say something of their own through a link."""
    return _serializer(_MESSAGE_SALT).dumps({"t": str(text)[:500], "k": "error" if kind == "error" else "ok"})


def read_message(value):
    if not value:
        return None
    try:
        data = _serializer(_MESSAGE_SALT).loads(value, max_age=MESSAGE_MAX_AGE)
    except BadSignature:
        return None
    if not isinstance(data, dict):
        return None
    return {"text": str(data.get("t", "")), "kind": data.get("k", "ok")}


def safe_next(target):
    """Where to go after logging in: only a path inside /admin, never another site."""
    if (isinstance(target, str) and (target == COOKIE_PATH or target.startswith(COOKIE_PATH + "/")
                                     or target.startswith(COOKIE_PATH + "?"))
            and "//" not in target and "\\" not in target and ".." not in target and target.isprintable()
            and len(target) <= 300):
        return target
    return COOKIE_PATH
