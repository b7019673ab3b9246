"""Unitel's API: the only module that knows its wire format.

Where the facts come from: Unitel publishes no API document we know of. The system we
rebuild has its own Unitel client, public in its code, and this is the format it speaks
(the design doc, shared/design.md "Unitel API", sums it up):

  POST {UNITEL_API_URL}/auth               HTTP Basic username:password, empty body
       -> {"access_token"}                 kept for an hour; on a 401 the token is dropped,
                                           a new one fetched and that call sent once more
  Every other call is a POST with a JSON body and Authorization: Bearer <token>:
  POST /service/servicetype {"msisdn", "info": "1"}
       -> {"servicetype", "service": {"cards": {"day": [..], "noday": [..], "special": [..]},
                                      "data": {"data": [..], "days": [..], "entertainment": [..]}}}
          each item {"code" ("SD3000"), "name", "eng_name", "price" (MNT), "unit", "data", "days"}
  POST /service/recharge    {"msisdn", "card", "vatflag": "0"|"1", "vat_register_no",
                             "transactions": [{"journal_id", "amount" (a string), "description",
                                               "account"}]}          credit (our VOICE)
  POST /service/datapackage the same with "package" ("data3gb2d") for "card"  (our DATA)
       -> {"result": "success", "code": "000", "msg", "sv_id", "seq", "method": "cash",
           "vat": {"billId", "amount", "vat", "lottery", "qrData", "stocks": [..], ...}}
  An error answer: {"result": "401", "msg": "Unauthorized", "code": ...}

Our order number is the transaction's journal_id: the request id of a top-up.

No status query appears in that client (its endpoints are /auth, /service/servicetype,
/service/unitel, /service/recharge, /service/datapackage, /service/payment).
UNITEL_STATUS_PATH names one when the operator has it, and `none` says there is none
(the production default). The shape asked here is the sandbox's, our guess, so that the
real one is a change to this file only:

  POST {UNITEL_STATUS_PATH} {"journal_id"}
       -> the top-up answer for that journal id, plus "status": "SUCCESS|FAILED|PENDING"
       -> HTTP 404 {"result": "failed", "code": "404", "msg"}: the operator never received it

A submit is sent once and never retried here, except after a 401 (see _post): anything
but a clear answer is UNKNOWN, for the status query -- or a person -- to settle.
"""
import logging
import threading
import time
from dataclasses import dataclass

import requests
from urllib3.exceptions import NewConnectionError

from ..logs import event
from . import http

log = logging.getLogger("elife.unitel")

SUCCESS, FAILED, UNKNOWN, NOT_FOUND, PENDING = "success", "failed", "unknown", "not_found", "pending"

SUCCESS_RESULT, SUCCESS_CODE = "success", "000"  # the rebuilt system's UnitelResponseCode.SUCCESS
UNAUTHORIZED = "401"                              # its UnitelResponseCode.UNAUTHORIZED
# Definite refusals: the operator did not and will not top this number up, so the order
# is failed and refunded. Source: no code table of Unitel's is public -- the rebuilt
# system's client names only "000" and "401" and treats every other answer as an error --
# so these are the codes we agreed with the sandbox, one per refusal the issue names.
# Any code not listed here is UNKNOWN: flagged and settled by asking, never refunded on a
# guess. When Unitel gives us its table, its refusals go here (and into the sandbox).
REFUSALS = {
    "101": "the number is not in service",
    "102": "the package is not allowed for this number",
    "103": "the amount is not the package's price",
    "104": "the number is barred",
}
NOT_RECEIVED = "404"  # the sandbox's status query: this journal id never reached the operator

CARD_GROUPS = ("day", "noday", "special")          # service.cards.*: credit, our VOICE
DATA_GROUPS = ("data", "days", "entertainment")     # service.data.*: data, our DATA
TOKEN_SECONDS = 55 * 60  # the rebuilt system keeps a token an hour; a little less here
ACCOUNT = "elife-wechatpay"  # transactions[].account: the paying side, WeChat Pay via eLife


@dataclass(frozen=True)
class Receipt:
    """The VAT e-receipt (e-barimt) of a top-up, as the operator gave it (`vat`)."""
    bill_id: str
    lottery: str
    qr_data: str
    amount: str
    vat: str


@dataclass(frozen=True)
class Answer:
    outcome: str  # success | failed | unknown | not_found | pending
    code: str = ""
    message: str = ""
    http_status: int | None = None
    latency_ms: int = 0
    sent: bool = True  # False only when the request provably never left us
    receipt: Receipt | None = None
    request: str = ""  # what was asked, for the audit trail (no phone number)


@dataclass(frozen=True)
class Package:
    """One item of a number's package list."""
    recharge_type: str  # VOICE (a card) | DATA (a data package)
    group: str          # day | noday | special | data | days | entertainment
    code: str
    name: str
    eng_name: str
    price: int          # MNT
    unit: str
    data: str
    days: int | None


class Unreachable(Exception):
    """The package list could not be had: no answer, an error, or not the expected shape."""


def has_status_query(settings):
    return settings.UNITEL_STATUS_PATH != "none"


class UnitelClient:
    # One token per process, shared by its threads.
    _token = None
    _token_expires = 0.0
    _lock = threading.Lock()

    def __init__(self, settings, http=None):
        self.s = settings
        self.base = settings.UNITEL_API_URL.rstrip("/")
        self.timeout = (settings.UNITEL_CONNECT_TIMEOUT, settings.UNITEL_READ_TIMEOUT)
        self.http = http or _http

    @property
    def has_status_query(self):
        return has_status_query(self.s)

    # -- token ---------------------------------------------------------------------
    def _login(self, timeout):
        r = self.http.post(f"{self.base}/auth", timeout=timeout,
                           auth=(self.s.UNITEL_USERNAME, self.s.UNITEL_PASSWORD))
        if r.status_code != 200:
            raise requests.HTTPError(f"login answered HTTP {r.status_code}")
        data = _json(r)
        token = data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise requests.HTTPError("login answered without a token")
        UnitelClient._token = token
        UnitelClient._token_expires = time.monotonic() + TOKEN_SECONDS
        event(log, logging.INFO, "unitel_login")
        return token

    def _bearer(self, timeout):
        with UnitelClient._lock:
            if UnitelClient._token and time.monotonic() < UnitelClient._token_expires:
                return UnitelClient._token
            return self._login(timeout)

    def _renew(self, refused, timeout):
        """A new token after `refused` got a 401 -- unless another thread renewed it already."""
        with UnitelClient._lock:
            if UnitelClient._token and UnitelClient._token != refused:
                return UnitelClient._token
            UnitelClient._token = None
            return self._login(timeout)

    @staticmethod
    def forget_token():
        UnitelClient._token = None

    def _post(self, path, body, timeout):
        """POST `body` with the token; after a 401, once more with a new token.

        Resending is safe for every call, a submit included: a 401 is the operator
        refusing the caller before it looks at the request, so nothing was done with it.
        Raises requests exceptions (the caller decides what they mean); a login failure
        after the 401 is a requests.HTTPError too."""
        token = self._bearer(timeout)
        r = self.http.post(self.base + path, json=body, timeout=timeout,
                           headers={"Authorization": f"Bearer {token}"})
        if not _token_refused(r):
            return r
        event(log, logging.INFO, "unitel_token_refused", path=path)
        token = self._renew(token, timeout)
        return self.http.post(self.base + path, json=body, timeout=timeout,
                              headers={"Authorization": f"Bearer {token}"})

    # -- the top-up ------------------------------------------------------------------
    def submit(self, *, journal_id, msisdn, recharge_type, operator_code, amount_mnt, vat_register_no=None):
        """Ask for one top-up: credit (VOICE) by card code, or a data package (DATA).
        Never retried but after a 401: an unclear answer is UNKNOWN."""
        path, key = ("/service/datapackage", "package") if recharge_type == "DATA" else ("/service/recharge", "card")
        body = {
            "msisdn": msisdn, key: operator_code,
            "vatflag": self.s.UNITEL_VAT_FLAG,
            "vat_register_no": vat_register_no or self.s.UNITEL_VAT_REGISTER_NO,
            "transactions": [{"journal_id": journal_id, "amount": str(amount_mnt),
                              "description": f"eLife top-up {journal_id}", "account": ACCOUNT}],
        }
        asked = f"POST {path} {key}={operator_code} amount={amount_mnt} journal_id={journal_id}"
        started = time.monotonic()
        try:
            token = self._bearer(self.timeout)
        except (requests.RequestException, ValueError) as exc:
            return Answer(UNKNOWN, "login_failed", str(exc)[:200], None, _ms(started), sent=False, request=asked)
        try:
            r = self.http.post(self.base + path, json=body, timeout=self.timeout,
                               headers={"Authorization": f"Bearer {token}"})
            if _token_refused(r):
                # Refused before it was looked at (see _post): safe to send once more.
                event(log, logging.INFO, "unitel_token_refused", path=path, order=journal_id)
                token = self._renew(token, self.timeout)
                r = self.http.post(self.base + path, json=body, timeout=self.timeout,
                                   headers={"Authorization": f"Bearer {token}"})
        except requests.RequestException as exc:
            return Answer(UNKNOWN, type(exc).__name__, str(exc)[:200], None, _ms(started),
                          sent=not _never_connected(exc), request=asked)
        return _read_topup(r, started, asked)

    def status(self, journal_id):
        """What the operator knows of a journal id (UNITEL_STATUS_PATH). Safe to repeat."""
        started = time.monotonic()
        if not self.has_status_query:
            return Answer(UNKNOWN, "no_status_query", "UNITEL_STATUS_PATH is none", None, 0, sent=False)
        asked = f"POST {self.s.UNITEL_STATUS_PATH} journal_id={journal_id}"
        try:
            r = self._post(self.s.UNITEL_STATUS_PATH, {"journal_id": journal_id}, self.timeout)
        except (requests.RequestException, ValueError) as exc:
            return Answer(UNKNOWN, type(exc).__name__, str(exc)[:200], None, _ms(started), request=asked)
        ms = _ms(started)
        data = _json(r)
        if r.status_code == 404:
            # Only the operator's own "never received" allows the one resubmit; a 404 page
            # from a proxy or gateway in front of it says nothing about the request.
            if isinstance(data, dict) and str(data.get("code", "")) == NOT_RECEIVED \
                    and str(data.get("result", "")) != SUCCESS_RESULT:
                return Answer(NOT_FOUND, NOT_RECEIVED, str(data.get("msg", ""))[:200] or "journal id not found",
                              404, ms, request=asked)
            return Answer(UNKNOWN, "http_404", r.text[:200], 404, ms, request=asked)
        if r.status_code != 200 or not isinstance(data, dict):
            return Answer(UNKNOWN, f"http_{r.status_code}", r.text[:200], r.status_code, ms, request=asked)
        status = str(data.get("status", "")).upper()
        code = str(data.get("code", ""))
        message = str(data.get("msg", ""))[:200]
        if status == "SUCCESS":
            return Answer(SUCCESS, code, message, 200, ms, receipt=_receipt(data.get("vat")), request=asked)
        if status == "FAILED":  # the status query's own word: not done, and will not be
            return Answer(FAILED, code, message or REFUSALS.get(code, "failed"), 200, ms, request=asked)
        outcome = PENDING if status == "PENDING" else UNKNOWN
        return Answer(outcome, code or "no_code", message or status, 200, ms, request=asked)

    # -- the package list ------------------------------------------------------------
    def packages(self, msisdn, seconds=None):
        """(servicetype, [Package]) for the number; each request waits at most `seconds`
        (default: the connect and read timeouts). Raises Unreachable."""
        timeout = self.timeout if seconds is None else (min(self.s.UNITEL_CONNECT_TIMEOUT, seconds), seconds)
        try:
            r = self._post("/service/servicetype", {"msisdn": msisdn, "info": "1"}, timeout)
        except (requests.RequestException, ValueError) as exc:
            raise Unreachable(f"{type(exc).__name__}: {str(exc)[:200]}") from None
        data = _json(r)
        if r.status_code != 200 or not isinstance(data, dict) or not isinstance(data.get("service"), dict):
            raise Unreachable(f"HTTP {r.status_code}: {r.text[:200]}")
        service = data["service"]
        out = []
        for section, groups, rtype in (("cards", CARD_GROUPS, "VOICE"), ("data", DATA_GROUPS, "DATA")):
            block = service.get(section)
            if not isinstance(block, dict):
                continue
            for group in groups:
                items = block.get(group)
                for item in items if isinstance(items, list) else ():
                    p = _package(rtype, group, item)
                    if p is not None:
                        out.append(p)
        return str(data.get("servicetype", "")), out


def _token_refused(r):
    if r.status_code == 401:
        return True
    data = _json(r)
    return isinstance(data, dict) and str(data.get("result", "")) == UNAUTHORIZED


def _read_topup(r, started, asked):
    ms = _ms(started)
    data = _json(r)
    if _token_refused(r):
        return Answer(UNKNOWN, UNAUTHORIZED, "the token was refused twice", r.status_code, ms, request=asked)
    if r.status_code not in (200, 400) or not isinstance(data, dict):
        return Answer(UNKNOWN, f"http_{r.status_code}", r.text[:200], r.status_code, ms, request=asked)
    result, code = str(data.get("result", "")), str(data.get("code", ""))
    message = str(data.get("msg", ""))[:200]
    if r.status_code == 200 and result == SUCCESS_RESULT and code == SUCCESS_CODE:
        return Answer(SUCCESS, code, message, 200, ms, receipt=_receipt(data.get("vat")), request=asked)
    if result != SUCCESS_RESULT and code in REFUSALS:
        return Answer(FAILED, code, message or REFUSALS[code], r.status_code, ms, request=asked)
    return Answer(UNKNOWN, code or "no_code", f"{result} {message}".strip(), r.status_code, ms, request=asked)


def _receipt(vat):
    """The receipt in a `vat` block; None when there is none."""
    if not isinstance(vat, dict):
        return None

    def text(key, limit):
        value = vat.get(key)
        return "" if value is None or isinstance(value, (dict, list)) else str(value)[:limit]

    receipt = Receipt(bill_id=text("billId", 64), lottery=text("lottery", 32), qr_data=text("qrData", 2000),
                      amount=text("amount", 32), vat=text("vat", 32))
    return receipt if receipt.bill_id or receipt.lottery else None


def _package(rtype, group, item):
    if not isinstance(item, dict):
        return None
    code, price = item.get("code"), _whole(item.get("price"))
    if not isinstance(code, str) or not code.strip() or price is None:
        return None

    def text(key, limit):
        value = item.get(key)
        return "" if value is None or isinstance(value, (dict, list)) else str(value).strip()[:limit]

    return Package(recharge_type=rtype, group=group, code=code.strip()[:32], name=text("name", 100),
                   eng_name=text("eng_name", 100), price=price, unit=text("unit", 16),
                   data=text("data", 32), days=_whole(item.get("days")))


def _whole(value):
    """A whole number given as a number or a string ("5000", "5,000", "5000.00"); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float):
        return int(value) if value.is_integer() and value >= 0 else None
    if isinstance(value, str):
        s = value.strip().replace(",", "")
        if s.endswith(".00"):
            s = s[:-3]
        return int(s) if s.isascii() and s.isdigit() and len(s) < 12 else None
    return None


def _json(r):
    try:
        return r.json()
    except ValueError:
        return None


def _never_connected(exc):
    """True when the TCP connection was never made, so the submit never left us."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError):
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        return isinstance(reason, NewConnectionError)
    return False


def _ms(started):
    return int((time.monotonic() - started) * 1000)


_http = http.Session()
