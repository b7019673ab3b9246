"""Unitel top-up API: the only module that knows its wire format.

No public document of Unitel's API exists; this is the format we agreed with the
sandbox, kept here so that adapting to the real document is a change to this file:

  POST {UNITEL_API_URL}/auth/token      {"username", "password"}
       -> 200 {"access_token", "expires_in"}           401 on bad credentials
  POST {UNITEL_API_URL}/topups          {"requestId", "msisdn", "productCode", "rechargeType"}
       Authorization: Bearer <token>
       -> 200 {"resultCode", "message", "requestId", "transactionId"}
  GET  {UNITEL_API_URL}/topups/<requestId>
       -> 200 {"requestId", "status": "SUCCESS|FAILED|PENDING", "resultCode"}
       -> 404 {"resultCode": "4040"}                   never received (any other 404: unknown)

A submit is sent once and never retried here: anything but a clear answer is UNKNOWN,
and the status query (which may be retried) settles it later.
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

SUCCESS_CODES = {"0000"}
# Definite refusals: the operator did not and will not top this number up.
FAILURE_CODES = {
    "1001": "subscriber not found or not in service",
    "1002": "product not available",
    "1003": "invalid msisdn",
    "1004": "subscriber barred",
}


@dataclass(frozen=True)
class Answer:
    outcome: str  # success | failed | unknown | not_found | pending
    code: str = ""
    message: str = ""
    http_status: int | None = None
    latency_ms: int = 0
    sent: bool = True  # False only when the request provably never left us


class UnitelClient:
    _token = None
    _token_expires = 0.0
    _lock = threading.Lock()

    def __init__(self, settings, http=None):
        self.s = settings
        self.base = settings.UNITEL_API_URL.rstrip("/")
        self.timeout = (settings.UNITEL_CONNECT_TIMEOUT, settings.UNITEL_READ_TIMEOUT)
        self.http = http or _http

    # -- token ---------------------------------------------------------------------
    def _login(self):
        r = self.http.post(f"{self.base}/auth/token", timeout=self.timeout, json={
            "username": self.s.UNITEL_USERNAME, "password": self.s.UNITEL_PASSWORD})
        if r.status_code != 200:
            raise requests.HTTPError(f"login answered HTTP {r.status_code}")
        data = r.json()
        if not isinstance(data, dict):
            raise requests.HTTPError("login answered something that is not an object")
        token, ttl = data.get("access_token"), data.get("expires_in", 300)
        if not isinstance(token, str) or not token:
            raise requests.HTTPError("login answered without a token")
        ttl = ttl if isinstance(ttl, int) and ttl > 0 else 300
        UnitelClient._token = token
        UnitelClient._token_expires = time.monotonic() + ttl - min(60, ttl // 2)
        event(log, logging.INFO, "unitel_login", ttl=ttl)
        return token

    def _bearer(self):
        with UnitelClient._lock:
            if UnitelClient._token and time.monotonic() < UnitelClient._token_expires:
                return UnitelClient._token
            return self._login()

    @staticmethod
    def forget_token():
        UnitelClient._token = None

    # -- calls ---------------------------------------------------------------------
    def submit(self, *, request_id, msisdn, product_code, recharge_type):
        """Ask for one top-up. Never retried: an unclear answer is UNKNOWN."""
        started = time.monotonic()
        try:
            token = self._bearer()
        except (requests.RequestException, ValueError) as exc:
            return Answer(UNKNOWN, "login_failed", str(exc)[:200], None, _ms(started), sent=False)
        try:
            r = self.http.post(f"{self.base}/topups", timeout=self.timeout,
                               headers={"Authorization": f"Bearer {token}"},
                               json={"requestId": request_id, "msisdn": msisdn,
                                     "productCode": product_code, "rechargeType": recharge_type})
        except requests.RequestException as exc:
            return Answer(UNKNOWN, type(exc).__name__, str(exc)[:200], None, _ms(started),
                          sent=not _never_connected(exc))
        return self._read_submit(r, started)

    def _read_submit(self, r, started):
        ms = _ms(started)
        if r.status_code == 401:
            self.forget_token()
            return Answer(UNKNOWN, "401", "token refused", 401, ms)
        try:
            data = r.json()
        except ValueError:
            data = None
        if r.status_code != 200 or not isinstance(data, dict):
            return Answer(UNKNOWN, f"http_{r.status_code}", r.text[:200], r.status_code, ms)
        code = str(data.get("resultCode", ""))
        message = str(data.get("message", ""))[:200]
        if code in SUCCESS_CODES:
            return Answer(SUCCESS, code, message, 200, ms)
        if code in FAILURE_CODES:
            return Answer(FAILED, code, message or FAILURE_CODES[code], 200, ms)
        return Answer(UNKNOWN, code or "no_code", message, 200, ms)

    def status(self, request_id):
        """What the operator knows of a request id. Safe to repeat; retried once after a 401."""
        started = time.monotonic()
        for attempt in (1, 2):
            try:
                token = self._bearer()
                r = self.http.get(f"{self.base}/topups/{request_id}", timeout=self.timeout,
                                  headers={"Authorization": f"Bearer {token}"})
            except (requests.RequestException, ValueError) as exc:
                return Answer(UNKNOWN, type(exc).__name__, str(exc)[:200], None, _ms(started))
            if r.status_code == 401 and attempt == 1:
                self.forget_token()
                continue
            break
        ms = _ms(started)
        try:
            data = r.json()
        except ValueError:
            data = {}
        if r.status_code == 404:
            # Only the operator's own "never received" allows the one resubmit; a 404 page
            # from a proxy or gateway in front of it says nothing about the request.
            if isinstance(data, dict) and str(data.get("resultCode", "")) == "4040":
                return Answer(NOT_FOUND, "4040", "request id not found", 404, ms)
            return Answer(UNKNOWN, "http_404", r.text[:200], 404, ms)
        if r.status_code != 200 or not isinstance(data, dict):
            return Answer(UNKNOWN, f"http_{r.status_code}", r.text[:200], r.status_code, ms)
        status = str(data.get("status", "")).upper()
        code = str(data.get("resultCode", ""))
        outcome = {"SUCCESS": SUCCESS, "FAILED": FAILED, "PENDING": PENDING}.get(status, UNKNOWN)
        return Answer(outcome, code, status, 200, ms)


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
