"""The sandbox's fake WeChat: the mini-program login (code2Session) and Cloud Hosting pay
(unified order, order query, close), with wechat_money.py's refunds and bill; and the
control endpoints that play the customer and the platform: paying (which delivers the
payment notice to the service), the notice itself, the refunds made, calls answering 503.
"""
import hashlib
import json
import secrets
import time

import requests
from flask import jsonify, request

from . import wechat_money


def register(app, state, settings):
    """Add the fake WeChat to the sandbox app (state: app.py's State)."""

    def service_url():
        return settings.SANDBOX_SERVICE_URL.rstrip("/")

    # -- WeChat: login ---------------------------------------------------------------
    @app.get("/wechat/sns/jscode2session")
    def code2session():
        code = request.args.get("js_code", "")
        if not code or code.startswith("invalid"):
            return jsonify({"errcode": 40029, "errmsg": "invalid code"})
        openid = "o" + hashlib.sha256(code.encode()).hexdigest()[:27]
        return jsonify({"openid": openid, "session_key": secrets.token_hex(12)})

    # -- WeChat: Cloud Hosting pay ---------------------------------------------------
    @app.after_request
    def openapi_seqid(resp):
        """Cloud Hosting's open API answers through the platform's sidecar, each answer
        with its x-openapi-seqid; POST /wechat/_openapi {"seqid": false} plays the sidecar
        missing (the open-API service not switched on)."""
        if request.path.startswith("/wechat/_/pay/") and state.openapi_seqid:
            resp.headers["x-openapi-seqid"] = secrets.token_hex(12)
        return resp

    @app.post("/wechat/_openapi")
    def openapi_mode():
        body = request.get_json(force=True, silent=True) or {}
        with state.lock:
            state.openapi_seqid = bool(body.get("seqid", True))
            state.save()
        return jsonify({"seqid": state.openapi_seqid})

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
                state.save()
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

    @app.post("/wechat/_/pay/closeorder")
    def closeorder():
        body, err = pay_body("closeorder")
        if err:
            return err
        with state.lock:
            trade = state.trades.get(body.get("out_trade_no"))
            if trade is None:
                return resp(return_code="SUCCESS", result_code="FAIL", err_code="ORDERNOTEXIST",
                            err_code_des="order does not exist")
            if trade["state"] in ("SUCCESS", "REFUND"):
                return resp(return_code="SUCCESS", result_code="FAIL", err_code="ORDERPAID",
                            err_code_des="the order is paid")
            trade["state"] = "CLOSED"
            state.save()
        return resp(return_code="SUCCESS", result_code="SUCCESS")

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
            if trade["state"] == "CLOSED":
                return jsonify({"error": {"code": "trade_closed", "message": "the trade was closed"}}), 409
            if trade["state"] == "NOTPAY":
                trade["state"] = "SUCCESS"
                trade["transaction_id"] = "4200" + "".join(secrets.choice("0123456789") for _ in range(24))
                trade["paid_at"] = time.time()  # its day on the bill (China time)
                state.save()
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
            state.save()
        return jsonify({"down": sorted(state.wechat_down)})
