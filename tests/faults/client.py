"""The clients: customers and WeChat calling the service, every answer recorded with its
time, so the check can tell an allowed 503 (during a database fault) from a bug."""
import json
import threading
import time
from dataclasses import dataclass

import requests


@dataclass
class Call:
    kind: str          # login | orders | payment_create | callback | health
    started: float     # monotonic
    ended: float
    status: int | None  # None: no HTTP answer (connection reset or refused, timeout)
    code: str = ""     # the JSON error code, or the callback's errcode
    error: str = ""


class Recorder:
    def __init__(self, base_url):
        self.base = base_url
        self.calls = []
        self.lock = threading.Lock()
        self.aborted = threading.Event()  # the run is ending: no more requests, no more waiting

    def call(self, kind, method, path, timeout=20, **kw):
        if self.aborted.is_set():
            raise RuntimeError("the run is ending")
        headers = {"Connection": "close", **kw.pop("headers", {})}
        t0 = time.monotonic()
        try:
            r = requests.request(method, self.base + path, headers=headers, timeout=timeout, **kw)
        except requests.RequestException as exc:
            rec = Call(kind, t0, time.monotonic(), None, error=f"{type(exc).__name__}: {str(exc)[:200]}")
            with self.lock:
                self.calls.append(rec)
            return rec, None
        t1 = time.monotonic()
        try:
            data = r.json()
        except ValueError:
            data = None
        code = ""
        if isinstance(data, dict):
            if isinstance(data.get("error"), dict):
                code = str(data["error"].get("code", ""))
            elif "errcode" in data:
                code = f"errcode={data['errcode']}"
        rec = Call(kind, t0, t1, r.status_code, code, "" if r.status_code < 500 else r.text[:200])
        with self.lock:
            self.calls.append(rec)
        return rec, data

    def retrying(self, kind, method, path, deadline_s=40, ok=(200, 201), **kw):
        """As a careful client would: again after a 503 or no answer, for a bounded time."""
        deadline = time.monotonic() + deadline_s
        pause = 0.3
        while True:
            rec, data = self.call(kind, method, path, **kw)
            if rec.status in ok:
                return data
            if rec.status not in (None, 503) or time.monotonic() + pause > deadline:
                raise RuntimeError(f"{method} {path}: {rec.status} {rec.code} {rec.error}".strip())
            if self.aborted.wait(pause):
                raise RuntimeError("the run is ending")
            pause = min(pause * 1.5, 1.5)


class SandboxControl:
    """The sandbox's control endpoints (never through a proxy, never faulted)."""

    def __init__(self, url):
        self.url = url
        self.http = requests.Session()
        self.lock = threading.Lock()
        self._token = None

    def _post(self, path, body=None, timeout=10):
        r = requests.post(self.url + path, json=body if body is not None else {}, timeout=timeout)
        r.raise_for_status()
        return r.json()

    def mode(self, mode, msisdn=None):
        return self._post("/unitel/_mode", {"mode": mode, **({"msisdn": msisdn} if msisdn else {})})

    def pay(self, number):
        return self._post(f"/wechat/_pay/{number}", {"notify": False})

    def notice(self, number):
        r = requests.get(f"{self.url}/wechat/_notice/{number}", timeout=10)
        r.raise_for_status()
        return r.json()

    def wechat_down(self, *calls):
        return self._post("/wechat/_down", {"calls": list(calls)})

    def submit_log(self):
        r = requests.get(f"{self.url}/unitel/_log", timeout=30)
        r.raise_for_status()
        return r.json()

    def refunds(self):
        r = requests.get(f"{self.url}/wechat/_refunds", timeout=30)
        r.raise_for_status()
        return r.json()

    def trade(self, number):
        """WeChat's order query, as the service would ask it."""
        r = self.http.post(f"{self.url}/wechat/_/pay/queryorder", json={"out_trade_no": number}, timeout=10)
        r.raise_for_status()
        return r.json().get("respdata") or {}

    def topup(self, request_id):
        """The (sandbox's) status query: what the operator actually did for a journal id."""
        with self.lock:
            if self._token is None:
                r = self.http.post(f"{self.url}/unitel/auth", auth=("faults", "faults"), timeout=10)
                r.raise_for_status()
                self._token = r.json()["access_token"]
        r = self.http.post(f"{self.url}/unitel/service/status", json={"journal_id": request_id}, timeout=10,
                           headers={"Authorization": f"Bearer {self._token}"})
        if r.status_code == 404:
            return "NOT_FOUND"
        r.raise_for_status()
        return r.json().get("status")


def deliver_storm(recorder, notice, copies):
    """Deliver one notice `copies` times at the same instant, as WeChat's retries and
    its platform's duplicates would; returns the replies (None: no answer)."""
    gate = threading.Barrier(copies)
    replies = [None] * copies
    body = json.dumps(notice["body"])

    def one(i):
        try:
            gate.wait(10)
        except threading.BrokenBarrierError:
            pass
        try:
            rec, data = recorder.call("callback", "POST", notice["path"], data=body, headers=notice["headers"])
        except RuntimeError:  # the run is ending
            return
        replies[i] = (rec.status, data)

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(copies)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return replies
