"""WeChat: code2Session, and WeChat Pay through the Cloud Hosting open API.

Wire facts (developers.weixin.qq.com, wxcloudrun pay/order/unified, query, close, refund):
inside the container, `POST http://api.weixin.qq.com/_/pay/<call>` needs no signature;
bodies are snake_case JSON; answers are `{errcode, errmsg, respdata: {...}}`.
"""
import json
import logging
import secrets
import time
from dataclasses import dataclass

import requests

from ..logs import event
from . import http

log = logging.getLogger("elife.wechat")
_http = http.Session()


class WeChatUnavailable(Exception):
    """WeChat could not be asked, or answered with something we cannot use."""


class WeChatRejected(Exception):
    """WeChat answered and said no (a bad login code, a refused payment call)."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Trade:
    """What WeChat's order query says of one of our trades."""
    out_trade_no: str
    state: str  # SUCCESS | NOTPAY | CLOSED | REFUND | USERPAYING | PAYERROR | NOTFOUND
    total_fee: int | None
    transaction_id: str | None

    @property
    def paid(self):
        # Only SUCCESS: a trade already refunded at WeChat (REFUND) must never be
        # marked paid and recharged by a late notice or the lost-callback sweep.
        return self.state == "SUCCESS"


class WeChatClient:
    def __init__(self, settings):
        self.s = settings
        self.base = settings.WECHAT_API_BASE.rstrip("/")
        self.timeout = (settings.WECHAT_TIMEOUT, settings.WECHAT_TIMEOUT)

    # -- login ---------------------------------------------------------------------
    def code2session(self, code):
        """The openid for a mini-program login code."""
        try:
            r = _http.get(f"{self.base}/sns/jscode2session", timeout=self.timeout, params={
                "appid": self.s.WECHAT_APPID, "secret": self.s.WECHAT_SECRET,
                "js_code": code, "grant_type": "authorization_code"})
            data = r.json()
        except (requests.RequestException, ValueError) as exc:
            raise WeChatUnavailable(f"code2Session failed: {type(exc).__name__}") from None
        if not isinstance(data, dict):
            raise WeChatUnavailable("code2Session answered something that is not an object")
        if data.get("errcode"):
            raise WeChatRejected(data.get("errcode"), str(data.get("errmsg", "rejected"))[:200])
        openid = data.get("openid")
        if not isinstance(openid, str) or not openid or len(openid) > 64:
            raise WeChatUnavailable("code2Session answered without a usable openid")
        return openid

    # -- pay -----------------------------------------------------------------------
    def _pay(self, call, body):
        started = time.monotonic()
        try:
            r = _http.post(f"{self.base}/_/pay/{call}", json=body, timeout=self.timeout)
            data = r.json()
        except (requests.RequestException, ValueError) as exc:
            event(log, logging.WARNING, "wechat_unavailable", call=call, error=type(exc).__name__,
                  ms=int((time.monotonic() - started) * 1000))
            raise WeChatUnavailable(f"{call} failed: {type(exc).__name__}") from None
        if not isinstance(data, dict) or r.status_code >= 500:
            raise WeChatUnavailable(f"{call} answered HTTP {r.status_code}")
        if data.get("errcode"):
            raise WeChatRejected(data.get("errcode"), f"{call}: {str(data.get('errmsg'))[:200]}")
        resp = data.get("respdata")
        if not isinstance(resp, dict):
            raise WeChatUnavailable(f"{call} answered without respdata")
        return resp

    def unified_order(self, *, order_number, total_fee, openid, description, client_ip, callback_path):
        """Create (or re-create: same out_trade_no) the trade; returns wx.requestPayment's params."""
        resp = self._pay("unifiedorder", {
            "body": description,
            "openid": openid,
            "out_trade_no": order_number,
            "spbill_create_ip": client_ip or "127.0.0.1",
            "env_id": self.s.WECHAT_ENV_ID,
            "sub_mch_id": self.s.WECHAT_MCH_ID,
            "total_fee": total_fee,
            "attach": json.dumps({"orderNumber": order_number}, separators=(",", ":")),
            "callback_type": 2,
            "container": {"service": self.s.WECHAT_SERVICE_NAME, "path": callback_path},
        })
        if resp.get("return_code") != "SUCCESS" or resp.get("result_code") != "SUCCESS":
            raise WeChatRejected(resp.get("err_code") or "unified_order_failed",
                                 str(resp.get("err_code_des") or resp.get("return_msg") or "refused")[:200])
        payment = resp.get("payment")
        if not isinstance(payment, dict):
            raise WeChatUnavailable("unified order answered without payment parameters")
        keys = ("appId", "timeStamp", "nonceStr", "package", "signType", "paySign")
        return {k: payment.get(k) for k in keys}

    def query_order(self, order_number):
        resp = self._pay("queryorder", {
            "out_trade_no": order_number,
            "sub_mch_id": self.s.WECHAT_MCH_ID,
            "nonce_str": secrets.token_hex(16),
        })
        if resp.get("return_code") != "SUCCESS":
            raise WeChatUnavailable(f"order query: {str(resp.get('return_msg'))[:200]}")
        if resp.get("result_code") != "SUCCESS":
            if resp.get("err_code") == "ORDERNOTEXIST":
                return Trade(order_number, "NOTFOUND", None, None)
            raise WeChatUnavailable(f"order query: {resp.get('err_code')}")
        fee = resp.get("total_fee")
        return Trade(
            out_trade_no=str(resp.get("out_trade_no") or ""),
            state=str(resp.get("trade_state") or ""),
            total_fee=fee if isinstance(fee, int) and not isinstance(fee, bool) else None,
            transaction_id=resp.get("transaction_id"),
        )

    def close_order(self, order_number):
        """Close an unpaid trade so that it can no longer be paid. Raises WeChatRejected
        with code ORDERPAID when the customer paid it after all (then: the order query);
        a trade WeChat never had (ORDERNOTEXIST) or already closed counts as closed."""
        try:
            resp = self._pay("closeorder", {
                "out_trade_no": order_number,
                "sub_mch_id": self.s.WECHAT_MCH_ID,
                "nonce_str": secrets.token_hex(16),
            })
        except WeChatRejected as exc:
            if exc.code in ("ORDERNOTEXIST", "ORDERCLOSED"):
                return
            raise
        if resp.get("return_code") != "SUCCESS":
            raise WeChatUnavailable(f"close order: {str(resp.get('return_msg'))[:200]}")
        code = resp.get("err_code")
        if resp.get("result_code") != "SUCCESS" and code not in ("ORDERNOTEXIST", "ORDERCLOSED"):
            raise WeChatRejected(code or "close_failed",
                                 str(resp.get("err_code_des") or "refused")[:200])

    def refund(self, *, order_number, total_fee, reason):
        """Refund in full. `out_refund_no` is derived from the order: asking twice is one refund."""
        resp = self._pay("refund", {
            "out_trade_no": order_number,
            "out_refund_no": refund_number(order_number),
            "env_id": self.s.WECHAT_ENV_ID,
            "sub_mch_id": self.s.WECHAT_MCH_ID,
            "total_fee": total_fee,
            "refund_fee": total_fee,
            "refund_desc": reason[:80],
            "nonce_str": secrets.token_hex(16),
        })
        if resp.get("return_code") != "SUCCESS" or resp.get("result_code") != "SUCCESS":
            raise WeChatRejected(resp.get("err_code") or "refund_failed",
                                 str(resp.get("err_code_des") or resp.get("return_msg") or "refused")[:200])
        return resp


def refund_number(order_number):
    return "R" + order_number
