"""The sandbox: a fake WeChat (login, Cloud Hosting pay) and a fake Unitel, over real HTTP.

It shares no logic with the service: it speaks the wire formats as the real parties
would (Unitel's: elife/clients/unitel.py's docstring), so the service's clients are
exercised for real. Its state (trades, refunds, the
top-up log, the modes) is kept in SANDBOX_STATE_FILE, rewritten after every change, so a
restart does not forget a payment it took while the service's database remembers it;
login tokens stay in memory (the service logs in again on a 401).
Its control endpoints and operator modes are described in docs/design.md.

Here: that state, its file, /_reset and /_health. The halves add their routes to the one
app: wechat.py (login and pay, with wechat_money.py: refunds and the bill, and
wechat_messages.py: subscribe messages) and unitel.py.
"""
import json
import os
import threading

from flask import Flask, jsonify

from . import unitel, wechat, wechat_messages, wechat_money


class State:
    KEPT = ("trades", "refunds", "wechat_down", "topups", "log", "calls", "mode", "mode_for", "delay_for",
            "servicetype_mode", "fail_code", "prices", "prices_for", "extra", "refund_mode", "openapi_seqid",
            "messages", "message_calls", "messages_mode", "stable_tokens", "wx_tokens")

    def __init__(self, path=None):
        self.lock = threading.Lock()
        self.tokens = {}          # token -> expiry (monotonic); kept across resets
        self.path = path          # None: memory only
        self.reset()
        self.load()

    def load(self):
        if not self.path or not os.path.exists(self.path):
            return
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError) as exc:
            raise RuntimeError(f"cannot read the state file {self.path} ({exc}); "
                               "delete it to start empty") from None
        for name in self.KEPT:
            if name in data:
                setattr(self, name, data[name])
        self.wechat_down = set(self.wechat_down)

    def save(self):
        """After every change, with the lock held. Written whole to a temporary file and
        renamed over the old one: a sandbox killed at any moment leaves the old state or
        the new, never half of one."""
        if not self.path:
            return
        data = {name: getattr(self, name) for name in self.KEPT}
        data["wechat_down"] = sorted(self.wechat_down)
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        tmp = f"{self.path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False)
        os.replace(tmp, self.path)

    def reset(self):
        self.trades = {}          # out_trade_no -> dict
        self.refunds = {}         # out_refund_no -> dict
        self.wechat_down = set()  # pay calls answering 503: unifiedorder | queryorder | refund | ...
        self.openapi_seqid = True  # pay answers carry x-openapi-seqid, as through Cloud Hosting's sidecar
        wechat_money.reset(self)  # refund mode, bill rows added by tests
        wechat_messages.reset(self)  # subscribe messages, their mode, access_tokens
        self.expired = set()      # tokens whose next use answers 401 (_expire_tokens)
        self.topups = {}          # journal_id -> {"status", "code", "vat"}
        self.log = []             # every submit that reached the operator, oldest first
        self.calls = []           # every call to the fake Unitel, as received
        self.mode = "success"
        self.mode_for = {}        # msisdn -> mode
        self.delay_for = {}       # msisdn, or "" for all -> seconds for `slow`
        self.servicetype_mode = "success"
        self.fail_code = "101"    # the refusal `fail` answers with
        self.prices = {}          # code -> MNT (None: not offered), for every number
        self.prices_for = {}      # msisdn -> {code -> MNT or None}
        self.extra = {}           # codes _price added to the catalogue


def create_sandbox(settings):
    app = Flask("elife.sandbox")
    path = settings.SANDBOX_STATE_FILE
    state = State(None if path in ("", ":memory:") else path)
    app.config["STATE"] = state

    @app.post("/_reset")
    def reset():
        with state.lock:
            state.reset()
            state.save()
        return jsonify({"ok": True})

    @app.get("/_health")
    def health():
        return jsonify({"status": "ok"})

    wechat.register(app, state, settings)
    wechat_messages.register(app, state)  # subscribe/send and stable_token
    unitel.register(app, state, settings)
    return app
