"""WeChat subscribe messages: subscribeMessage.send, and on a host the access_token it needs.

Wire facts (developers.weixin.qq.com: subscribeMessage.send, getStableAccessToken, and
Cloud Hosting's 开放接口服务):
- `POST <base>/cgi-bin/message/subscribe/send` with JSON `{touser, template_id, page,
  data: {key: {value}}, miniprogram_state (developer | trial | formal), lang (zh_CN |
  en_US | zh_HK | zh_TW)}`; the answer is `{errcode, errmsg}`.
  errcode 0 sent; 43101 the customer has no consent left (refused, or spent it);
  40003 bad openid; 40037 bad template id; 41030 page not in the live version; 47003 a
  field breaks its type's rule (errmsg names it); -1 busy, try again later.
- Inside Cloud Hosting (`cloud`): `http://api.weixin.qq.com/...` with no access_token,
  once the path is allowed in the console's 微信令牌权限配置; the platform answers with an
  `x-openapi-seqid` header when the call went through it.
- On a host (`token`): `?access_token=` from `POST <base>/cgi-bin/stable_token`
  `{grant_type: client_credential, appid, secret, force_refresh}` -> `{access_token,
  expires_in}` (at most 7200 s; in normal mode WeChat hands out the same token while it is
  valid and a new one in its last 5 minutes; a forced refresh voids the old one, at most
  20 a day, 30 s apart). 40001 (invalid or not the latest) and 42001 (expired) on a send
  mean: a new token, then the same send once more.

The token is kept where every worker and host sees it (a TokenStore handed in:
notify/tokens.py keeps it in the database); this module knows the wire and nothing else.
"""
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import requests

from ..logs import event
from ..timeutil import utcnow
from . import http

log = logging.getLogger("elife.wechat_messages")
_http = http.Session()

SEND_PATH = "/cgi-bin/message/subscribe/send"
TOKEN_PATH = "/cgi-bin/stable_token"
REAL_BASE = "http://api.weixin.qq.com"  # Cloud Hosting's; a host goes over https

# Outcomes of one send.
SENT, NO_CONSENT, REJECTED, RETRY = "sent", "no_consent", "rejected", "retry"
REJECTIONS = {40003: "touser is not a valid openid", 40037: "template_id is not valid",
              41030: "page is not in the live version", 47003: "a field breaks its type's rule"}
TOKEN_ERRORS = (40001, 42001, 40014)  # invalid / expired / not a token: a new one, once
RENEW_BEFORE = timedelta(minutes=5)   # WeChat itself renews in a token's last 5 minutes
FORCE_GAP = timedelta(seconds=30)     # forced refreshes WeChat allows


@dataclass(frozen=True)
class Message:
    touser: str          # the customer's openid
    template_id: str
    data: dict           # {key: value}, each already fitted to its type (notify/fields.py)
    page: str = ""
    miniprogram_state: str = "formal"
    lang: str = "zh_CN"

    def body(self):
        out = {"touser": self.touser, "template_id": self.template_id,
               "data": {k: {"value": v} for k, v in self.data.items()},
               "miniprogram_state": self.miniprogram_state, "lang": self.lang}
        if self.page:
            out["page"] = self.page
        return out


@dataclass(frozen=True)
class Sent:
    """What became of one send. outcome: sent | no_consent | rejected (final: WeChat
    refused this message as it is) | retry (busy, 5xx, no answer, no token)."""
    outcome: str
    errcode: int | None = None
    errmsg: str = ""
    http_status: int | None = None
    ms: int = 0
    seqid: str = ""  # Cloud Hosting's x-openapi-seqid, for WeChat's support

    @property
    def said(self):
        """WeChat's words as one short line, for last_error and the logs."""
        code = "" if self.errcode is None else f"{self.errcode} "
        return f"{code}{self.errmsg}".strip()[:255]


@dataclass(frozen=True)
class Token:
    value: str
    expires_at: datetime  # naive UTC

    def fresh(self, now=None):
        return self.expires_at - RENEW_BEFORE > (now or utcnow())


class TokenUnavailable(Exception):
    """stable_token could not give a token (unreachable, busy, or a wrong appid/secret)."""


class TokenStore:
    """Where the token lives for every worker: notify/tokens.py. The default keeps it in
    this process only (one worker, tests)."""

    def __init__(self):
        self._token, self._forced = None, None

    def load(self):
        return self._token

    def save(self, token):
        self._token = token

    def claim_force(self, now):
        """True for the one caller allowed a forced refresh now (30 s apart)."""
        if self._forced and now - self._forced < FORCE_GAP:
            return False
        self._forced = now
        return True


class MessageClient:
    def __init__(self, settings, tokens=None):
        self.s = settings
        self.mode = settings.WECHAT_MESSAGE_API  # cloud | token
        base = settings.WECHAT_API_BASE.rstrip("/")
        # The secret and tokens never go over plain http to the real WeChat.
        self.base = "https://api.weixin.qq.com" if self.mode == "token" and base == REAL_BASE else base
        self.timeout = (settings.WECHAT_TIMEOUT, settings.NOTIFY_TIMEOUT)
        self.tokens = tokens or TokenStore()

    # -- send -------------------------------------------------------------------------
    def send(self, message):
        """Send one message; never raises for what WeChat or the network did."""
        if self.mode != "token":
            return self._post(message, None)
        try:
            token = self.token()
        except TokenUnavailable as exc:
            return Sent(RETRY, errmsg=f"no access_token: {exc}"[:255])
        answer = self._post(message, token.value)
        if answer.errcode not in TOKEN_ERRORS:
            return answer
        event(log, logging.INFO, "wechat_token_refused", errcode=answer.errcode)
        try:
            token = self.renew(refused=token.value)
        except TokenUnavailable as exc:
            return Sent(RETRY, answer.errcode, f"{answer.errmsg}; renewing: {exc}"[:255], answer.http_status)
        answer = self._post(message, token.value)
        if answer.errcode in TOKEN_ERRORS:  # refused twice: leave it to the next attempt
            return Sent(RETRY, answer.errcode, answer.errmsg, answer.http_status, answer.ms, answer.seqid)
        return answer

    def _post(self, message, access_token):
        started = time.monotonic()
        params = {"access_token": access_token} if access_token else None
        try:
            r = _http.post(self.base + SEND_PATH, params=params, json=message.body(), timeout=self.timeout)
        except requests.RequestException as exc:
            # A read timeout may follow a message WeChat delivered: retried all the same (a
            # second card at worst; with no consent left WeChat answers 43101 instead).
            return Sent(RETRY, errmsg=f"no answer: {type(exc).__name__}", ms=_ms(started))
        ms, seqid = _ms(started), r.headers.get("x-openapi-seqid", "")[:64]
        try:
            data = r.json()
        except ValueError:
            data = None
        if r.status_code >= 500 or not isinstance(data, dict):
            return Sent(RETRY, errmsg=f"HTTP {r.status_code}: {r.text[:120]}", http_status=r.status_code,
                        ms=ms, seqid=seqid)
        code = data.get("errcode", 0)
        code = code if isinstance(code, int) and not isinstance(code, bool) else None
        said = str(data.get("errmsg") or "")[:200]
        if code == 0:
            outcome = SENT
        elif code == 43101:
            outcome = NO_CONSENT
        elif code in REJECTIONS:
            outcome = REJECTED
        else:  # -1, a token error, or a code not documented for this call: try again later
            outcome = RETRY
        return Sent(outcome, code, said, r.status_code, ms, seqid)

    # -- the access_token (token mode) --------------------------------------------------
    def token(self):
        """A token with more than RENEW_BEFORE left: the shared one, or a new one."""
        current = self.tokens.load()
        if current is not None and current.fresh():
            return current
        return self._fetch_and_save(force=False)

    def renew(self, refused):
        """A token other than `refused` (which WeChat just said is invalid or expired)."""
        current = self.tokens.load()
        if current is not None and current.value != refused and current.fresh():
            return current  # another worker renewed it meanwhile
        token = self._fetch_and_save(force=False)
        if token.value != refused:
            return token  # voided by a forced refresh elsewhere: normal mode has the new one
        if not self.tokens.claim_force(utcnow()):
            raise TokenUnavailable("another worker forced a refresh less than 30 s ago")
        return self._fetch_and_save(force=True)

    def _fetch_and_save(self, force):
        token = self.fetch_token(force)
        self.tokens.save(token)
        event(log, logging.INFO, "wechat_token_renewed", forced=force,
              expires_at=token.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"))
        return token

    def fetch_token(self, force=False):
        try:
            r = _http.post(self.base + TOKEN_PATH, timeout=(self.s.WECHAT_TIMEOUT, self.s.NOTIFY_TIMEOUT), json={
                "grant_type": "client_credential", "appid": self.s.WECHAT_APPID, "secret": self.s.WECHAT_SECRET,
                "force_refresh": bool(force)})
            data = r.json()
        except (requests.RequestException, ValueError) as exc:
            raise TokenUnavailable(f"stable_token: {type(exc).__name__}") from None
        if not isinstance(data, dict):
            raise TokenUnavailable(f"stable_token answered HTTP {r.status_code} without an object")
        value, seconds = data.get("access_token"), data.get("expires_in")
        if data.get("errcode") or not isinstance(value, str) or not value or len(value) > 512 \
                or not isinstance(seconds, int) or isinstance(seconds, bool) or seconds <= 0:
            raise TokenUnavailable(f"stable_token: {data.get('errcode')} {str(data.get('errmsg'))[:120]}")
        return Token(value, utcnow() + timedelta(seconds=min(seconds, 7200)))


def _ms(started):
    return int((time.monotonic() - started) * 1000)
