"""WeChat: code2Session, and WeChat Pay through the Cloud Hosting open API.

Wire facts (developers.weixin.qq.com, wxcloudrun pay/order/unified, query, close, refund,
queryrefund, downloadbill): inside the container, `POST http://api.weixin.qq.com/_/pay/<call>`
needs no signature; bodies are snake_case JSON; answers are `{errcode, errmsg, respdata}`,
respdata carrying the v2 API's fields.

What the Cloud Hosting pages do not spell out, taken from the v2 API they wrap
(pay.weixin.qq.com/wiki/doc/api/jsapi.php?chapter=9_5, 9_6, 9_16), and assumed here:
- refund: `callback_type: 2` and `container: {service, path}` route the refund notice to
  our container, as for the payment; the answer is accepted (result_code SUCCESS) or
  refused (result_code FAIL, err_code such as NOTENOUGH, with err_code_des).
- queryrefund by out_refund_no: refund_count, then per refund n out_refund_no_$n,
  refund_id_$n, refund_fee_$n, refund_status_$n (SUCCESS | PROCESSING | REFUNDCLOSE |
  CHANGE), refund_success_time_$n (China time); err_code REFUNDNOTEXIST when unknown.
  An unsuffixed refund_status (one refund) is read too.
- downloadbill (bill_type ALL): respdata is the bill as text -- a header line, one line
  per trade or refund whose every field starts with a backtick, then a totals header
  (总交易单数,...) and its line; amounts in yuan. A day without trades answers
  return_code FAIL "No Bill Exist" (error_code 20002); a bill not made yet (before about
  10:00 China time the next day) "Bill Creating". Columns are found by their header
  names, so the older layout without 订单金额/申请退款金额 reads too.
"""
import enum
import json
import logging
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import date as Date
from decimal import Decimal, InvalidOperation

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


class BillNotReady(Exception):
    """WeChat has not made that day's bill yet: ask again later."""


class BillFormatError(Exception):
    """The bill is not in WeChat's format (or was cut off): nothing in it is believed."""


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


@dataclass(frozen=True)
class RefundAccepted:
    """WeChat took the refund request (not yet a refund: the query or notice says)."""
    out_refund_no: str
    refund_id: str | None
    refund_fee: int | None


class RefundStatus(str, enum.Enum):
    """A refund's state in WeChat's words (the refund query's refund_status)."""
    SUCCESS = "SUCCESS"
    PROCESSING = "PROCESSING"
    REFUNDCLOSE = "REFUNDCLOSE"  # closed: nothing was refunded
    CHANGE = "CHANGE"            # the money could not go back the way it came (a closed card)
    NOTFOUND = "NOTFOUND"

    def __str__(self):
        return self.value


@dataclass(frozen=True)
class Refund:
    """What WeChat's refund query says of one refund of ours."""
    out_trade_no: str
    out_refund_no: str
    status: str  # a RefundStatus word, or whatever else WeChat said
    refund_fee: int | None
    refund_id: str | None
    success_time: str | None  # China time, as WeChat writes it

    @property
    def succeeded(self):
        return self.status == RefundStatus.SUCCESS

    @property
    def failed(self):
        # CHANGE: WeChat asks the merchant to handle it by hand; REFUNDCLOSE: closed.
        return self.status in (RefundStatus.REFUNDCLOSE, RefundStatus.CHANGE)


@dataclass(frozen=True)
class BillRow:
    """One line of the bill: a trade (SUCCESS) or a refund (REFUND). Money in fen."""
    time: str            # 交易时间, China time
    transaction_id: str  # 微信订单号
    out_trade_no: str    # 商户订单号
    state: str           # 交易状态: SUCCESS | REFUND | REVOKED ...
    settlement_fee: int  # 应结订单金额
    order_fee: int       # 订单金额 (the settlement amount where the column is absent)
    refund_fee: int      # 退款金额
    applied_refund_fee: int  # 申请退款金额 (退款金额 where absent)
    refund_id: str       # 微信退款单号 ('' for a trade)
    out_refund_no: str   # 商户退款单号 ('' for a trade)
    refund_status: str   # 退款状态


# The totals line, and what each total must equal over the rows. Header names of the
# current layout, then the older one's.
TOTALS = (
    ("trades", ("总交易单数",), None),
    ("settlement", ("应结订单总金额", "总交易额"), "settlement_fee"),
    ("refunds", ("退款总金额", "总退款金额"), "refund_fee"),
    ("orders", ("订单总金额",), "order_fee"),
    ("appliedRefunds", ("申请退款总金额",), "applied_refund_fee"),
)


@dataclass(frozen=True)
class Bill:
    """One day's bill (bill_type ALL); `totals` as WeChat wrote them (empty for a day
    without a bill), counts and fen."""
    date: Date
    rows: tuple = ()
    totals: dict = field(default_factory=dict)

    @property
    def trades(self):
        return [r for r in self.rows if r.state == "SUCCESS"]

    @property
    def refunds(self):
        return [r for r in self.rows if r.state == "REFUND"]

    def row_sums(self):
        """The totals as the rows add up."""
        out = {"trades": len(self.rows)}
        for name, _, attr in TOTALS:
            if attr:
                out[name] = sum(getattr(r, attr) for r in self.rows)
        return out

    def totals_differences(self):
        """{total: (the rows' sum, the bill's total)} for every total that disagrees."""
        sums = self.row_sums()
        return {k: (sums[k], v) for k, v in self.totals.items() if sums.get(k) != v}


# -- notices ---------------------------------------------------------------------------

# What a notice may carry that we keep with it. payment_notices.body/headers are TEXT
# (65,535 bytes on MySQL); a WeChat notice is about 1 KB: keep the first 16,000 bytes of
# anything larger (at most 48,000 once decoded with replacement characters), and say so.
PLATFORM_HEADERS = ("X-WX-SOURCE", "X-WX-OPENID", "X-WX-APPID", "X-WX-ENV", "X-Forwarded-For", "User-Agent")
NOTICE_BODY_CAP = 16_000
NOTICE_HEADER_CAP = 512
# Fields only a refund notice carries (Cloud Hosting, camelCase): a body with any of
# them is a refund notice, wherever it was sent.
REFUND_NOTICE_FIELDS = ("outRefundNo", "refundId", "refundStatus", "settlementRefundFee",
                        "refundRecvAccout", "reqInfo")
PAY_NOTICE_FIELDS = ("returnCode", "resultCode", "totalFee", "transactionId")


@dataclass(frozen=True)
class Notice:
    """One notice as it arrived at a callback path, parsed. Nothing in it is believed:
    fulfil/notices.py records it and checks it against the order and WeChat's queries.

    kind: "payment" (a pay notice's shape), "refund" (a refund notice's), "malformed"
    (not JSON), or "other" (JSON, but neither shape)."""
    kind: str
    text: str                 # the body as stored: capped, with the real size said
    headers: dict             # the platform's headers kept with it, each capped
    size: int                 # bytes received
    from_platform: bool       # Cloud Hosting's X-WX-SOURCE was present
    return_code: object = None        # payment notices: as sent (may be any JSON value)
    result_code: object = None
    out_trade_no: object = None
    total_fee: object = None          # fen, as sent: an int when well formed
    transaction_id: object = None
    attach_order_number: object = None  # the orderNumber inside `attach`, None if absent
    out_refund_no: object = None      # refund notices
    refund_status: object = None
    has_payment_fields: bool = False  # a payment notice's fields (e.g. on the refund path)

    @property
    def succeeded(self):
        return self.return_code == "SUCCESS" and self.result_code == "SUCCESS"


def parse_notice(raw_body, headers):
    """A Cloud Hosting notice (payment or refund; camelCase JSON) as a Notice."""
    text = raw_body[:NOTICE_BODY_CAP].decode("utf-8", "replace")
    if len(raw_body) > NOTICE_BODY_CAP:
        text += f"...[truncated: {len(raw_body)} bytes in all]"
    kept = {h: headers.get(h)[:NOTICE_HEADER_CAP] for h in PLATFORM_HEADERS if headers.get(h)}
    base = dict(text=text, headers=kept, size=len(raw_body), from_platform=bool(headers.get("X-WX-SOURCE")))
    try:
        body = json.loads(raw_body)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than Python's stack
        return Notice(kind="malformed", **base)
    if not isinstance(body, dict):
        return Notice(kind="other", **base)
    # Every field a decision or a log line may need, whatever the shape says it is.
    said = dict(out_trade_no=body.get("outTradeNo"), total_fee=body.get("totalFee"),
                transaction_id=body.get("transactionId"),
                has_payment_fields=any(k in body for k in PAY_NOTICE_FIELDS), **base)
    if any(k in body for k in REFUND_NOTICE_FIELDS):
        return Notice(kind="refund", out_refund_no=body.get("outRefundNo"),
                      refund_status=body.get("refundStatus"), **said)
    if "returnCode" not in body:
        return Notice(kind="other", **said)
    return Notice(kind="payment", return_code=body.get("returnCode"), result_code=body.get("resultCode"),
                  attach_order_number=_attach_order_number(body.get("attach")), **said)


def _attach_order_number(attach):
    if not isinstance(attach, str):
        return None
    try:
        data = json.loads(attach)
    except (ValueError, RecursionError):  # as the body: nesting deeper than Python's stack
        return None
    return data.get("orderNumber") if isinstance(data, dict) else None


class WeChatClient:
    def __init__(self, settings):
        self.s = settings
        self.base = settings.WECHAT_API_BASE.rstrip("/")
        self.timeout = (settings.WECHAT_TIMEOUT, settings.WECHAT_TIMEOUT)
        self._openapi_checked = False

    # -- notices -------------------------------------------------------------------
    def parse_notice(self, raw_body, headers):
        """A notice as it arrived at one of our callback paths, as a Notice (Cloud
        Hosting's carry no signature: nothing to verify here)."""
        return parse_notice(raw_body, headers)

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
    def _call(self, call, body, timeout=None):
        """respdata of one pay call, whatever its type."""
        started = time.monotonic()
        try:
            r = _http.post(f"{self.base}/_/pay/{call}", json=body, timeout=timeout or self.timeout)
            data = r.json()
        except (requests.RequestException, ValueError) as exc:
            event(log, logging.WARNING, "wechat_unavailable", call=call, error=type(exc).__name__,
                  ms=int((time.monotonic() - started) * 1000))
            raise WeChatUnavailable(f"{call} failed: {type(exc).__name__}") from None
        self._check_openapi(call, r)
        if not isinstance(data, dict) or r.status_code >= 500:
            raise WeChatUnavailable(f"{call} answered HTTP {r.status_code}")
        if data.get("errcode"):
            raise WeChatRejected(data.get("errcode"), f"{call}: {str(data.get('errmsg'))[:200]}")
        return data.get("respdata")

    def _check_openapi(self, call, r):
        """Inside Cloud Hosting the open API answers through the platform's sidecar, and
        every answer carries x-openapi-seqid. The first answer says whether it does (once
        per process): without it, in production inside Cloud Hosting (CBR_ENV_ID), the
        sidecar is not there and payments will fail."""
        if self._openapi_checked:
            return
        self._openapi_checked = True
        if r.headers.get("x-openapi-seqid"):
            event(log, logging.INFO, "openapi_live", call=call)
        elif self.s.is_production and self.s.CBR_ENV_ID:
            event(log, logging.ERROR, "openapi_not_enabled", call=call, env=self.s.CBR_ENV_ID,
                  message="WeChat's answer carried no x-openapi-seqid: the open-API service does not serve "
                          "this version. In the Cloud Hosting console: 云调用 (cloud call) > 开放接口服务 (the "
                          "open-API service), switch it on and allow the WeChat Pay calls in 微信令牌权限配置, "
                          "then create a new version (one made before the switch never gets it)")

    def _pay(self, call, body):
        resp = self._call(call, body)
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

    def refund(self, *, order_number, total_fee, reason, callback_path=None):
        """Ask for a full refund. `out_refund_no` is derived from the order: asking twice is
        one refund. Accepted is not refunded: query_refund (or the refund notice, sent to
        `callback_path` in our container) says when the money went back."""
        body = {
            "out_trade_no": order_number,
            "out_refund_no": refund_number(order_number),
            "env_id": self.s.WECHAT_ENV_ID,
            "sub_mch_id": self.s.WECHAT_MCH_ID,
            "total_fee": total_fee,
            "refund_fee": total_fee,
            "refund_desc": reason[:80],
            "nonce_str": secrets.token_hex(16),
        }
        if callback_path:
            body.update(callback_type=2, container={"service": self.s.WECHAT_SERVICE_NAME, "path": callback_path})
        resp = self._pay("refund", body)
        if resp.get("return_code") != "SUCCESS" or resp.get("result_code") != "SUCCESS":
            raise WeChatRejected(resp.get("err_code") or "refund_failed",
                                 str(resp.get("err_code_des") or resp.get("return_msg") or "refused")[:200])
        return RefundAccepted(out_refund_no=str(resp.get("out_refund_no") or refund_number(order_number)),
                              refund_id=_text(resp.get("refund_id")), refund_fee=_fen(resp.get("refund_fee")))

    def query_refund(self, order_number):
        """The refund of ours for the order (out_refund_no), as WeChat has it now."""
        out_refund_no = refund_number(order_number)
        resp = self._pay("queryrefund", {
            "out_refund_no": out_refund_no,
            "sub_mch_id": self.s.WECHAT_MCH_ID,
            "nonce_str": secrets.token_hex(16),
        })
        if resp.get("return_code") != "SUCCESS":
            raise WeChatUnavailable(f"refund query: {str(resp.get('return_msg'))[:200]}")
        if resp.get("result_code") != "SUCCESS":
            if resp.get("err_code") == "REFUNDNOTEXIST":
                return Refund(order_number, out_refund_no, "NOTFOUND", None, None, None)
            raise WeChatUnavailable(f"refund query: {resp.get('err_code')}")
        count = resp.get("refund_count")
        count = count if isinstance(count, int) and 0 < count <= 50 else 1
        for i in range(count):
            if str(resp.get(f"out_refund_no_{i}") or out_refund_no) != out_refund_no:
                continue
            status = resp.get(f"refund_status_{i}", resp.get("refund_status"))
            if not isinstance(status, str) or not status:
                raise WeChatUnavailable("refund query answered without refund_status")
            return Refund(
                out_trade_no=str(resp.get("out_trade_no") or order_number), out_refund_no=out_refund_no,
                status=status, refund_fee=_fen(resp.get(f"refund_fee_{i}", resp.get("refund_fee"))),
                refund_id=_text(resp.get(f"refund_id_{i}", resp.get("refund_id"))),
                success_time=_text(resp.get(f"refund_success_time_{i}", resp.get("refund_success_time"))))
        return Refund(order_number, out_refund_no, "NOTFOUND", None, None, None)

    def download_bill(self, day):
        """The bill (bill_type ALL) of one China-time day, parsed. A day without trades is
        an empty Bill; BillNotReady when WeChat has not made it yet."""
        resp = self._call("downloadbill", {
            "bill_date": day.strftime("%Y%m%d"),
            "bill_type": "ALL",
            "sub_mch_id": self.s.WECHAT_MCH_ID,
            "nonce_str": secrets.token_hex(16),
        }, timeout=(self.s.WECHAT_TIMEOUT, self.s.WECHAT_BILL_TIMEOUT))
        if isinstance(resp, str):
            return parse_bill(resp, day)
        if isinstance(resp, dict) and resp.get("return_code") == "FAIL":
            said = str(resp.get("return_msg") or "")
            if said.strip().lower() == "no bill exist":
                return Bill(day)
            if said.strip().lower() == "bill creating":
                raise BillNotReady(f"WeChat is still making the bill of {day:%Y%m%d}")
            raise WeChatRejected(str(resp.get("error_code") or "downloadbill_failed"), said[:200] or "refused")
        raise WeChatUnavailable("downloadbill answered something that is not a bill")


def refund_number(order_number):
    return "R" + order_number


def _text(value):
    return str(value)[:64] if value not in (None, "") else None


def _fen(value):
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# -- the bill ------------------------------------------------------------------------------

_COLUMNS = {  # our name: the header names WeChat uses for it (current layout, older one)
    "time": ("交易时间",), "transaction_id": ("微信订单号",), "out_trade_no": ("商户订单号",),
    "state": ("交易状态",), "settlement_fee": ("应结订单金额", "总金额"), "order_fee": ("订单金额",),
    "refund_fee": ("退款金额",), "applied_refund_fee": ("申请退款金额",), "refund_id": ("微信退款单号",),
    "out_refund_no": ("商户退款单号",), "refund_status": ("退款状态",),
}
_AMOUNT = re.compile(r"[0-9]{1,12}(\.[0-9]{1,5})?")  # yuan as WeChat writes it: 10.50, 0.01000
_REQUIRED = ("time", "transaction_id", "out_trade_no", "state", "settlement_fee", "refund_fee",
             "refund_id", "out_refund_no")


def yuan_to_fen(text):
    """'10.50' -> 1050, exactly (Decimal, never float); BillFormatError unless the amount
    is a whole number of fen."""
    if not isinstance(text, str) or not _AMOUNT.fullmatch(text.strip()):
        raise BillFormatError(f"not an amount in yuan: {str(text)[:20]!r}")
    try:
        fen = Decimal(text.strip()).scaleb(2)
    except InvalidOperation:
        raise BillFormatError(f"not an amount: {str(text)[:20]!r}") from None
    if fen != fen.to_integral_value():
        raise BillFormatError(f"not a whole number of fen: {text[:20]!r}")
    return int(fen)


def _fields(line, where):
    if not line.startswith("`"):
        raise BillFormatError(f"{where}: a bill line must start with a backtick")
    return [f.strip() for f in line[1:].split(",`")]


def parse_bill(text, day):
    """WeChat's bill text -> Bill. Strict: a row or total that does not fit the header, an
    amount that is not yuan with at most two decimals, or a missing totals section (a
    download cut off) is a BillFormatError, never a guess."""
    lines = [ln.rstrip("\r") for ln in text.lstrip("\ufeff").split("\n") if ln.strip()]
    if not lines:
        return Bill(day)
    header = [h.strip() for h in lines[0].split(",")]
    where = {}
    for name, names in _COLUMNS.items():
        found = next((header.index(h) for h in names if h in header), None)
        if found is not None:
            where[name] = found
    missing = [_COLUMNS[c][0] for c in _REQUIRED if c not in where]
    if missing:
        raise BillFormatError("the header lacks " + ", ".join(missing))
    rows, totals = [], None
    for i, line in enumerate(lines[1:], 1):  # lines[i] is line i + 1 of the bill
        if not line.startswith("`"):
            names = [h.strip() for h in line.split(",")]
            if names[0] != "总交易单数":
                raise BillFormatError(f"line {i + 1}: neither a row nor the totals header")
            if i != len(lines) - 2:
                raise BillFormatError(f"line {i + 1}: the totals header must be followed by exactly one line")
            values = _fields(lines[i + 1], f"line {i + 2}")
            if len(values) != len(names):
                raise BillFormatError(f"line {i + 2}: {len(values)} totals for {len(names)} names")
            totals = _totals(dict(zip(names, values)))
            break
        f = _fields(line, f"line {i + 1}")
        if len(f) != len(header):
            raise BillFormatError(f"line {i + 1}: {len(f)} fields for {len(header)} columns")
        rows.append(_row(f, where))
    if totals is None:
        raise BillFormatError("no totals section: the bill is incomplete")
    return Bill(day, tuple(rows), totals)


def _row(f, where):
    def get(name, default=""):
        return f[where[name]] if name in where else default

    def none_if_zero(value):
        return "" if value in ("", "0") else value

    settlement = yuan_to_fen(get("settlement_fee"))
    refund = yuan_to_fen(get("refund_fee") or "0")
    return BillRow(
        time=get("time"), transaction_id=get("transaction_id"), out_trade_no=get("out_trade_no"),
        state=get("state"), settlement_fee=settlement,
        order_fee=yuan_to_fen(get("order_fee")) if "order_fee" in where else settlement,
        refund_fee=refund,
        applied_refund_fee=yuan_to_fen(get("applied_refund_fee")) if "applied_refund_fee" in where else refund,
        refund_id=none_if_zero(get("refund_id")), out_refund_no=none_if_zero(get("out_refund_no")),
        refund_status=get("refund_status"))


def _totals(named):
    out = {}
    for name, headers, _ in TOTALS:
        value = next((named[h] for h in headers if h in named), None)
        if value is None:
            continue
        if name == "trades":
            if not value.isdigit():
                raise BillFormatError(f"总交易单数 is not a count: {value[:20]!r}")
            out[name] = int(value)
        else:
            out[name] = yuan_to_fen(value)
    if "trades" not in out:
        raise BillFormatError("the totals lack 总交易单数")
    return out
