"""The sandbox's WeChat Pay money calls: refund (with its modes and its notice), the refund
query, and the day's bill, in WeChat's own formats; and the control endpoints that play
them (the sandbox contract in shared/design.md):

- POST /wechat/_refund_mode {"mode": "success|processing|fail"}: how refund requests are
  answered from now on. `success` accepts, settles at once and delivers the refund
  notice (in the background, as WeChat does); `processing` accepts and leaves the refund
  PROCESSING; `fail` refuses the request itself (NOTENOUGH: the merchant balance is short).
  The notice of a refund settled at once leaves NOTICE_DELAY after the answer.
- POST /wechat/_refund_settle/<outTradeNo> {"result": "SUCCESS|REFUNDCLOSE|CHANGE",
  "notify": true}: settles the trade's PROCESSING refund and delivers its notice,
  answering with the service's reply (`"notify": false`: a lost notice).
- POST /wechat/_bill_extra {"date": "YYYYMMDD", "outTradeNo", "transactionId",
  "totalFee" (fen), "tradeState": "SUCCESS|REFUND", "refundFee", "time": "HH:MM:SS",
  "listed": true}: a row that day's bill carries, replacing the sandbox's own row of the
  same outTradeNo and tradeState. `"listed": false` counts it in the totals but leaves
  it out of the rows (a bill cut short), so the totals disagree with the rows.

A refund whose out_refund_no WeChat already closed (REFUNDCLOSE, CHANGE) may be asked for
again and is reopened: how the sandbox plays "refund again while WeChat allows it".
Bill days are China time (UTC+8); amounts in the bill are yuan.
"""
import json
import secrets
import threading
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import requests
from flask import jsonify, request

CHINA = timezone(timedelta(hours=8))
REFUND_MODES = ("success", "processing", "fail")
SETTLE_RESULTS = ("SUCCESS", "REFUNDCLOSE", "CHANGE")
APPID, MCH_ID = "wxsandbox000000000", "1800000000"
BILL_HEADER = ("交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,"
               "付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,"
               "退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注")
TOTALS_HEADER = "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
RATE = Decimal("0.006")  # the fee WeChat keeps, 0.60 %
NOTICE_DELAY = 0.3  # seconds between a refund settled at once and its notice


def reset(state):
    state.refund_mode = "success"
    state.bill_extra = {}     # "YYYYMMDD" -> {(outTradeNo, tradeState): row}
    state.generation = getattr(state, "generation", 0) + 1  # drops notices still queued


def china_day(epoch):
    return datetime.fromtimestamp(epoch, CHINA).date()


def china_time(epoch):
    return datetime.fromtimestamp(epoch, CHINA).strftime("%Y-%m-%d %H:%M:%S")


def yuan(fen):
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def _error(code, message, status=400):
    return jsonify({"error": {"code": code, "message": message}}), status


def register(app, state, pay_body, resp, service_url):
    """Add the money calls to the sandbox app (pay_body/resp: wechat.py's helpers)."""

    def refund_notice(r, trade):
        body = {
            "returnCode": "SUCCESS", "appid": APPID, "mchId": MCH_ID, "subAppid": APPID,
            "subMchId": trade.get("sub_mch_id") or "1900000000", "nonceStr": secrets.token_hex(8),
            "transactionId": trade.get("transaction_id"), "outTradeNo": r["out_trade_no"],
            "refundId": r["refund_id"], "outRefundNo": r["out_refund_no"],
            "totalFee": trade["total_fee"], "refundFee": r["refund_fee"],
            "settlementRefundFee": r["refund_fee"], "refundStatus": r["status"],
            "refundRecvAccout": "支付用户零钱", "refundAccount": "REFUND_SOURCE_RECHARGE_FUNDS",
            "refundRequestSource": "API",
        }
        if r.get("success_at"):
            body["successTime"] = china_time(r["success_at"])
        headers = {"Content-Type": "application/json", "X-WX-SOURCE": "wxpay_callback",
                   "User-Agent": "wxcloudrun-pay-callback"}
        return headers, body

    def deliver(r, trade):
        """POST the refund notice to the path the refund request named; the reply."""
        if not r.get("path"):
            return None
        headers, body = refund_notice(r, trade)
        try:
            reply = requests.post(service_url() + r["path"], headers=headers, data=json.dumps(body), timeout=10)
        except requests.RequestException as exc:
            r["notified"] = f"unreachable: {type(exc).__name__}"
            return None
        r["notified"] = reply.status_code
        return reply

    def deliver_later(r, trade):
        """As WeChat does: after the refund call was answered (and a moment later, so the
        caller's own refund query usually comes first); never after a reset."""
        generation = state.generation

        def run():
            time.sleep(NOTICE_DELAY)
            if state.generation == generation:
                deliver(r, trade)
        threading.Thread(target=run, daemon=True).start()

    def settle(r, trade, result):
        r["status"] = result
        if result == "SUCCESS":
            r["success_at"] = time.time()
        else:
            trade["state"] = "SUCCESS"  # closed: nothing went back, the trade stands paid

    @app.post("/wechat/_/pay/refund")
    def refund():
        body, err = pay_body("refund")
        if err:
            return err
        trade = state.trades.get(body.get("out_trade_no"))
        no = body.get("out_refund_no")
        with state.lock:
            if trade is None or trade["state"] not in ("SUCCESS", "REFUND"):
                return resp(return_code="SUCCESS", result_code="FAIL", err_code="TRADE_STATE_ERROR",
                            err_code_des="the trade is not paid")
            r = state.refunds.get(no)
            if body.get("refund_fee") != trade["total_fee"] and r is None:
                return resp(return_code="SUCCESS", result_code="FAIL", err_code="PARAM_ERROR",
                            err_code_des="refund_fee must equal total_fee here")
            if r is not None and r["status"] in ("SUCCESS", "PROCESSING"):
                r["requests"] += 1  # one out_refund_no is one refund, however often asked
                state.save()
                return resp(return_code="SUCCESS", result_code="SUCCESS", out_trade_no=r["out_trade_no"],
                            out_refund_no=no, refund_id=r["refund_id"], refund_fee=r["refund_fee"])
            if state.refund_mode == "fail":
                if r is not None:
                    r["requests"] += 1
                    state.save()
                return resp(return_code="SUCCESS", result_code="FAIL", err_code="NOTENOUGH",
                            err_code_des="基本账户余额不足，请充值后重新发起")
            if r is None:
                r = state.refunds[no] = {"out_refund_no": no, "out_trade_no": trade["out_trade_no"],
                                         "refund_fee": body.get("refund_fee"),
                                         "refund_id": "5030" + secrets.token_hex(12), "requests": 0}
            r.update(requests=r["requests"] + 1, status="PROCESSING", success_at=None,
                     path=(body.get("container") or {}).get("path"), notified=None)
            trade["state"] = "REFUND"
            if state.refund_mode == "success":
                settle(r, trade, "SUCCESS")
                deliver_later(r, trade)
            state.save()
        return resp(return_code="SUCCESS", result_code="SUCCESS", out_trade_no=r["out_trade_no"],
                    out_refund_no=no, refund_id=r["refund_id"], refund_fee=r["refund_fee"])

    @app.post("/wechat/_/pay/queryrefund")
    def queryrefund():
        body, err = pay_body("queryrefund")
        if err:
            return err
        r = state.refunds.get(body.get("out_refund_no"))
        if r is None and body.get("out_trade_no"):
            r = next((x for x in state.refunds.values() if x["out_trade_no"] == body["out_trade_no"]), None)
        if r is None:
            return resp(return_code="SUCCESS", result_code="FAIL", err_code="REFUNDNOTEXIST",
                        err_code_des="not exist")
        trade = state.trades.get(r["out_trade_no"], {})
        fields = {"out_refund_no_0": r["out_refund_no"], "refund_id_0": r["refund_id"],
                  "refund_fee_0": r["refund_fee"], "refund_status_0": r["status"],
                  "refund_channel_0": "ORIGINAL", "refund_recv_accout_0": "支付用户零钱"}
        if r.get("success_at"):
            fields["refund_success_time_0"] = china_time(r["success_at"])
        return resp(return_code="SUCCESS", result_code="SUCCESS", out_trade_no=r["out_trade_no"],
                    transaction_id=trade.get("transaction_id"), total_fee=trade.get("total_fee"),
                    refund_fee=r["refund_fee"], refund_count=1, **fields)

    @app.post("/wechat/_/pay/downloadbill")
    def downloadbill():
        body, err = pay_body("downloadbill")
        if err:
            return err
        raw = str(body.get("bill_date") or "")
        try:
            day = datetime.strptime(raw, "%Y%m%d").date() if len(raw) == 8 else None
        except ValueError:
            day = None
        if day is None or body.get("bill_type", "ALL") != "ALL":
            return resp(return_code="FAIL", return_msg="data format error")
        if day > datetime.now(CHINA).date():
            return resp(return_code="FAIL", return_msg="Bill Creating", error_code="20003")
        with state.lock:
            listed, hidden = bill_rows(day)
        if not listed and not hidden:
            return resp(return_code="FAIL", return_msg="No Bill Exist", error_code="20002")
        return jsonify({"errcode": 0, "errmsg": "ok", "respdata": bill_text(listed, hidden)})

    def bill_rows(day):
        """(rows printed, rows counted in the totals only) of one China day."""
        rows = {}
        for t in state.trades.values():
            if t.get("paid_at") and t["state"] in ("SUCCESS", "REFUND") and china_day(t["paid_at"]) == day:
                rows[(t["out_trade_no"], "SUCCESS")] = {
                    "time": china_time(t["paid_at"]), "transactionId": t["transaction_id"],
                    "outTradeNo": t["out_trade_no"], "openid": t.get("openid") or "",
                    "tradeState": "SUCCESS", "totalFee": t["total_fee"], "refundFee": 0, "listed": True,
                    "attach": t.get("attach") or ""}
        for r in state.refunds.values():
            if r.get("status") == "SUCCESS" and r.get("success_at") and china_day(r["success_at"]) == day:
                t = state.trades.get(r["out_trade_no"], {})
                rows[(r["out_trade_no"], "REFUND")] = {
                    "time": china_time(r["success_at"]), "transactionId": t.get("transaction_id") or "",
                    "outTradeNo": r["out_trade_no"], "openid": t.get("openid") or "", "tradeState": "REFUND",
                    "totalFee": t.get("total_fee") or r["refund_fee"], "refundFee": r["refund_fee"],
                    "refundId": r["refund_id"], "outRefundNo": r["out_refund_no"], "listed": True,
                    "attach": t.get("attach") or ""}
        rows.update(state.bill_extra.get(day.strftime("%Y%m%d"), {}))
        ordered = sorted(rows.values(), key=lambda x: (x["time"], x["outTradeNo"], x["tradeState"]))
        return [x for x in ordered if x["listed"]], [x for x in ordered if not x["listed"]]

    def bill_text(listed, hidden):
        lines = [BILL_HEADER]
        sums = {"settle": 0, "refund": 0, "order": 0, "applied": 0, "fee": Decimal("0")}
        for x in listed + hidden:
            refund = x["tradeState"] == "REFUND"
            settle_fee = 0 if refund else x["totalFee"]
            refund_fee = x["refundFee"] if refund else 0
            fee = (Decimal(-refund_fee if refund else settle_fee) * RATE / 100).quantize(Decimal("0.00001"))
            for k, v in (("settle", settle_fee), ("refund", refund_fee), ("order", x["totalFee"]),
                         ("applied", refund_fee), ("fee", fee)):
                sums[k] += v
            if not x["listed"]:
                continue
            cells = [x["time"], APPID, MCH_ID, "0", "", x["transactionId"], x["outTradeNo"], x["openid"],
                     "JSAPI", x["tradeState"], "OTHERS", "CNY", yuan(settle_fee), "0.00",
                     x.get("refundId", "0") if refund else "0", x.get("outRefundNo", "0") if refund else "0",
                     yuan(refund_fee), "0.00", "ORIGINAL" if refund else "", "SUCCESS" if refund else "",
                     "eLife", x["attach"], f"{fee:.5f}", "0.60%", yuan(x["totalFee"]), yuan(refund_fee), ""]
            lines.append(",".join("`" + c.replace(",`", ", `") for c in cells))
        lines.append(TOTALS_HEADER)
        lines.append(",".join("`" + c for c in (
            str(len(listed) + len(hidden)), yuan(sums["settle"]), yuan(sums["refund"]), "0.00",
            f"{sums['fee']:.5f}", yuan(sums["order"]), yuan(sums["applied"]))))
        return "\r\n".join(lines) + "\r\n"

    # -- control endpoints -----------------------------------------------------------
    @app.post("/wechat/_refund_mode")
    def refund_mode():
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict) or body.get("mode") not in REFUND_MODES:
            return _error("invalid_mode", f"mode must be one of {REFUND_MODES}")
        with state.lock:
            state.refund_mode = body["mode"]
            state.save()
        return jsonify({"mode": state.refund_mode})

    @app.post("/wechat/_refund_settle/<out_trade_no>")
    def refund_settle(out_trade_no):
        body = request.get_json(force=True, silent=True) or {}
        if not isinstance(body, dict) or body.get("result") not in SETTLE_RESULTS:
            return _error("invalid_result", f"result must be one of {SETTLE_RESULTS}")
        with state.lock:
            r = next((x for x in state.refunds.values()
                      if x["out_trade_no"] == out_trade_no and x.get("status") == "PROCESSING"), None)
            if r is None:
                return _error("no_processing_refund", "this trade has no PROCESSING refund", 404)
            trade = state.trades[out_trade_no]
            settle(r, trade, body["result"])
            state.save()
        if body.get("notify", True) is False:
            return jsonify({"settled": r["status"], "notified": False})
        reply = deliver(r, trade)
        if reply is None:
            return _error("service_unreachable", str(r.get("notified")), 502)
        return app.response_class(reply.content, status=reply.status_code, mimetype="application/json")

    @app.post("/wechat/_bill_extra")
    def bill_extra():
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict):
            return _error("invalid_body", "a JSON object is required")
        try:
            day = datetime.strptime(str(body.get("date")), "%Y%m%d").date()
            at = datetime.strptime(str(body.get("time", "12:00:00")), "%H:%M:%S").time()
        except ValueError:
            return _error("invalid_date", "date is YYYYMMDD (China time), time HH:MM:SS")
        no, state_ = body.get("outTradeNo"), body.get("tradeState", "SUCCESS")
        fee, refund_fee = body.get("totalFee"), body.get("refundFee", 0)
        ints = all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (fee, refund_fee))
        if not (isinstance(no, str) and 0 < len(no) <= 32) or state_ not in ("SUCCESS", "REFUND") or not ints:
            return _error("invalid_row", "outTradeNo (text), tradeState SUCCESS|REFUND, totalFee and "
                                         "refundFee (whole fen) are required")
        row = {"time": f"{day:%Y-%m-%d} {at:%H:%M:%S}",
               "transactionId": str(body.get("transactionId") or "4200" + secrets.token_hex(12)),
               "outTradeNo": no, "openid": "", "tradeState": state_, "totalFee": fee,
               "refundFee": refund_fee if state_ == "REFUND" else 0,
               "refundId": "5030" + secrets.token_hex(12), "outRefundNo": "R" + no,
               "listed": body.get("listed", True) is not False, "attach": ""}
        with state.lock:
            state.bill_extra.setdefault(day.strftime("%Y%m%d"), {})[(no, state_)] = row
        return jsonify({"date": day.strftime("%Y%m%d"), "rows": len(state.bill_extra[day.strftime("%Y%m%d")])})
