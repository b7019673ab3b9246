"""The sandbox: a fake WeChat (login, Cloud Hosting pay) and a fake Unitel, over real HTTP.

It keeps everything in memory and shares no logic with the service: it speaks the wire
formats as the real parties would, so the service's clients are exercised for real.
The sandbox contract (control endpoints, operator modes) is in shared/design.md.
"""
import hashlib
import json
import secrets
import socket
import threading
import time

import requests
from flask import Flask, jsonify, request

from . import wechat_money

MODES = ("success", "fail", "slow", "timeout", "5xx", "unknown", "drop")


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.tokens = {}          # token -> expiry (monotonic); kept across resets
        self.reset()

    def reset(self):
        self.trades = {}          # out_trade_no -> dict
        self.refunds = {}         # out_refund_no -> dict
        self.wechat_down = set()  # pay calls answering 503: unifiedorder | queryorder | refund | ...
        wechat_money.reset(self)  # refund mode, bill rows added by tests
        self.topups = {}          # requestId -> {"status", "resultCode"}
        self.log = []             # every submit that reached the operator, oldest first
        self.mode = "success"
        self.mode_for = {}        # msisdn -> mode


def create_sandbox(settings):
    app = Flask("elife.sandbox")
    state = State()
    app.config["STATE"] = state
    slow_delay = settings.UNITEL_READ_TIMEOUT / 3
    timeout_delay = settings.UNITEL_READ_TIMEOUT + 1.0

    def service_url():
        return settings.SANDBOX_SERVICE_URL.rstrip("/")

    @app.post("/_reset")
    def reset():
        with state.lock:
            state.reset()
        return jsonify({"ok": True})

    @app.get("/_health")
    def health():
        return jsonify({"status": "ok"})

    # -- WeChat: login ---------------------------------------------------------------
    @app.get("/wechat/sns/jscode2session")
    def code2session():
        code = request.args.get("js_code", "")
        if not code or code.startswith("invalid"):
            return jsonify({"errcode": 40029, "errmsg": "invalid code"})
        openid = "o" + hashlib.sha256(code.encode()).hexdigest()[:27]
        return jsonify({"openid": openid, "session_key": secrets.token_hex(12)})

    # -- WeChat: Cloud Hosting pay ---------------------------------------------------
    def pay_body(call):
        if call in state.wechat_down:
            return None, (jsonify({"errcode": -1, "errmsg": "system busy"}), 503)
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict):
            return None, (jsonify({"errcode": 40001, "errmsg": "invalid body"}), 200)
        return body, None

    def resp(**respdata):
        return jsonify({"errcode": 0, "errmsg": "ok", "respdata": respdata})

    @app.post("/wechat/_/pay/unifiedorder")
    def unifiedorder():
        body, err = pay_body("unifiedorder")
        if err:
            return err
        no, fee = body.get("out_trade_no"), body.get("total_fee")
        if not isinstance(no, str) or not isinstance(fee, int) or fee <= 0:
            return resp(return_code="SUCCESS", result_code="FAIL", err_code="PARAM_ERROR",
                        err_code_des="out_trade_no and total_fee are required")
        with state.lock:
            trade = state.trades.get(no)
            if trade and trade["total_fee"] != fee:
                return resp(return_code="SUCCESS", result_code="FAIL", err_code="INVALID_REQUEST",
                            err_code_des="201 商户订单号重复")
            if trade and trade["state"] != "NOTPAY":
                return resp(return_code="SUCCESS", result_code="FAIL", err_code="ORDERPAID",
                            err_code_des="商户订单已支付")
            if trade is None:
                trade = state.trades[no] = {
                    "out_trade_no": no, "total_fee": fee, "attach": body.get("attach"),
                    "openid": body.get("openid"), "path": (body.get("container") or {}).get("path"),
                    "sub_mch_id": body.get("sub_mch_id"), "state": "NOTPAY", "transaction_id": None,
                    "prepay_id": "wx" + secrets.token_hex(14),
                }
        nonce = secrets.token_hex(8)
        return resp(return_code="SUCCESS", result_code="SUCCESS", prepay_id=trade["prepay_id"], payment={
            "appId": "wxsandbox000000000", "timeStamp": str(int(time.time())), "nonceStr": nonce,
            "package": f"prepay_id={trade['prepay_id']}", "signType": "MD5",
            "paySign": hashlib.md5(f"{trade['prepay_id']}{nonce}".encode()).hexdigest().upper()})

    @app.post("/wechat/_/pay/queryorder")
    def queryorder():
        body, err = pay_body("queryorder")
        if err:
            return err
        trade = state.trades.get(body.get("out_trade_no"))
        if trade is None:
            return resp(return_code="SUCCESS", result_code="FAIL", err_code="ORDERNOTEXIST",
                        err_code_des="order does not exist")
        return resp(return_code="SUCCESS", result_code="SUCCESS", out_trade_no=trade["out_trade_no"],
                    trade_state=trade["state"], total_fee=trade["total_fee"],
                    transaction_id=trade["transaction_id"], attach=trade["attach"])

    # refund, queryrefund, downloadbill and their control endpoints
    wechat_money.register(app, state, pay_body, resp, service_url)

    # -- WeChat: the customer and the platform (control endpoints) -------------------
    def notice_for(trade):
        body = {
            "returnCode": "SUCCESS", "appid": "wxsandbox000000000", "mchId": "1800000000",
            "subAppid": "wxsandbox000000000", "subMchId": trade["sub_mch_id"] or "1900000000",
            "nonceStr": secrets.token_hex(8), "resultCode": "SUCCESS", "openid": trade["openid"],
            "isSubscribe": "N", "subOpenid": trade["openid"], "subIsSubscribe": "N",
            "tradeType": "JSAPI", "bankType": "OTHERS", "totalFee": trade["total_fee"],
            "feeType": "CNY", "cashFee": trade["total_fee"], "transactionId": trade["transaction_id"],
            "outTradeNo": trade["out_trade_no"], "timeEnd": time.strftime("%Y%m%d%H%M%S"),
        }
        if trade["attach"] is not None:
            body["attach"] = trade["attach"]
        headers = {"Content-Type": "application/json", "X-WX-SOURCE": "wxpay_callback",
                   "X-WX-OPENID": trade["openid"] or "", "User-Agent": "wxcloudrun-pay-callback"}
        return {"path": trade["path"] or f"/payment/callback/{trade['out_trade_no']}",
                "headers": headers, "body": body}

    @app.post("/wechat/_pay/<out_trade_no>")
    def customer_pays(out_trade_no):
        opts = request.get_json(force=True, silent=True) or {}
        with state.lock:
            trade = state.trades.get(out_trade_no)
            if trade is None:
                return jsonify({"error": {"code": "unknown_trade", "message": "no unified order for it"}}), 404
            if trade["state"] == "NOTPAY":
                trade["state"] = "SUCCESS"
                trade["transaction_id"] = "4200" + "".join(secrets.choice("0123456789") for _ in range(24))
                trade["paid_at"] = time.time()  # its day on the bill (China time)
        notice = notice_for(trade)
        if opts.get("notify", True) is False:
            return jsonify({"paid": True, "notified": False})
        try:
            r = requests.post(service_url() + notice["path"], headers=notice["headers"],
                              data=json.dumps(notice["body"]), timeout=10)
        except requests.RequestException as exc:
            return jsonify({"error": {"code": "service_unreachable", "message": str(exc)[:200]}}), 502
        return app.response_class(r.content, status=r.status_code, mimetype="application/json")

    @app.get("/wechat/_notice/<out_trade_no>")
    def notice(out_trade_no):
        trade = state.trades.get(out_trade_no)
        if trade is None or trade["state"] == "NOTPAY":
            return jsonify({"error": {"code": "not_paid", "message": "no paid trade with this number"}}), 404
        return jsonify(notice_for(trade))

    @app.get("/wechat/_refunds")
    def refunds():
        return jsonify(list(state.refunds.values()))

    @app.post("/wechat/_down")
    def wechat_down():
        body = request.get_json(force=True, silent=True) or {}
        calls = body.get("calls", [])
        with state.lock:
            state.wechat_down = set(calls) if isinstance(calls, list) else set()
        return jsonify({"down": sorted(state.wechat_down)})

    # -- Unitel ----------------------------------------------------------------------
    @app.post("/unitel/auth/token")
    def unitel_token():
        body = request.get_json(force=True, silent=True) or {}
        if not body.get("username") or not body.get("password"):
            return jsonify({"resultCode": "4010", "message": "bad credentials"}), 401
        token = secrets.token_urlsafe(24)
        with state.lock:
            state.tokens[token] = time.monotonic() + 3600
        return jsonify({"access_token": token, "expires_in": 3600})

    def authorized():
        token = request.headers.get("Authorization", "")[len("Bearer "):]
        return state.tokens.get(token, 0) > time.monotonic()

    @app.post("/unitel/topups")
    def unitel_submit():
        if not authorized():
            return jsonify({"resultCode": "4010", "message": "invalid token"}), 401
        body = request.get_json(force=True, silent=True) or {}
        rid, msisdn = body.get("requestId"), body.get("msisdn")
        mode = state.mode_for.get(msisdn, state.mode)
        if mode == "5xx":  # a gateway failing in front of the operator: nothing reaches it
            return "<html><body>502 Bad Gateway</body></html>", 500
        with state.lock:
            state.log.append({"requestId": rid, "msisdn": msisdn, "productCode": body.get("productCode"),
                              "rechargeType": body.get("rechargeType"), "mode": mode,
                              "at": time.time()})
            if rid in state.topups:
                return jsonify({"resultCode": "1009", "message": "duplicate requestId", "requestId": rid})
            done = mode != "fail"
            state.topups[rid] = {"status": "SUCCESS" if done else "FAILED",
                                 "resultCode": "0000" if done else "1001"}
        if mode == "fail":
            return jsonify({"resultCode": "1001", "message": "subscriber not in service", "requestId": rid})
        if mode == "slow":
            time.sleep(slow_delay)
        elif mode == "timeout":
            time.sleep(timeout_delay)
        elif mode == "drop":
            sock = request.environ.get("werkzeug.socket")
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                finally:
                    sock.close()
            return "", 204
        elif mode == "unknown":
            return jsonify({"resultCode": "7777", "message": "processing", "requestId": rid})
        return jsonify({"resultCode": "0000", "message": "success", "requestId": rid,
                        "transactionId": "UT" + secrets.token_hex(8)})

    @app.get("/unitel/topups/<rid>")
    def unitel_status(rid):
        if not authorized():
            return jsonify({"resultCode": "4010", "message": "invalid token"}), 401
        t = state.topups.get(rid)
        if t is None:
            return jsonify({"resultCode": "4040", "message": "request not found"}), 404
        return jsonify({"requestId": rid, **t})

    @app.get("/unitel/_log")
    def unitel_log():
        return jsonify(state.log)

    @app.post("/unitel/_mode")
    def unitel_mode():
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict) or body.get("mode") not in MODES:
            return jsonify({"error": {"code": "invalid_mode", "message": f"mode must be one of {MODES}"}}), 400
        with state.lock:
            if body.get("msisdn"):
                state.mode_for[str(body["msisdn"])] = body["mode"]
            else:
                state.mode = body["mode"]
        return jsonify({"mode": state.mode, "modeFor": state.mode_for})

    return app
