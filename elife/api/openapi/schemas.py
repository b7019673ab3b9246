"""components: the bodies' schemas and the security schemes. The patterns and bounds come
from the constants the code checks with; with the active catalogue, OrderRequest names
the products on sale."""
import re

from ...clients.wechat import REFUND_NOTICE_FIELDS
from ...fulfil.state import PaymentStatus, RechargeStatus
from ...notify import consent, fields
from ... import validators
from ...shop import catalog, phones
from ...shop.pricing import MAX_TOTAL_FEE
from .. import auth, common
from .. import orders as orders_api
from .parts import _anchored, _one_of, trimmed


def components(catalogue=None):
    return {
        "schemas": schemas(catalogue),
        "securitySchemes": {
            "bearerAuth": {"type": "http", "scheme": "bearer",
                           "description": "the token of POST /auth/login"},
            "wxOpenid": {"type": "apiKey", "in": "header", "name": "X-WX-OPENID",
                         "description": "set by WeChat Cloud Hosting; believed only with TRUST_WX_HEADERS, "
                                        "together with the platform's X-WX-SOURCE, and with X-WX-ENV equal "
                                        "to WECHAT_ENV_ID when that is sent (at most 64 characters)"},
            "adminBearer": {"type": "http", "scheme": "bearer", "description": "ADMIN_TOKEN"},
            "jobsBearer": {"type": "http", "scheme": "bearer", "description": "JOBS_TOKEN"},
            "metricsBearer": {"type": "http", "scheme": "bearer",
                              "description": "METRICS_TOKEN (ADMIN_TOKEN when that is unset)"},
            "adminCookie": {"type": "apiKey", "in": "cookie", "name": "elife_admin",
                            "description": "set by POST /admin/login; forms then need csrf_token"},
        },
    }


def _phone_pattern():
    """phones.normalize and check_operator as a pattern: the national number of a sold
    operator, perhaps after +976, 00976 or 976, with phones' printable separators
    (space, dash, dot, brackets) anywhere between."""
    sep = "[ ().-]*"
    spaced = lambda text: sep.join(re.escape(c) for c in text)  # noqa: E731
    prefixes = sorted(p for op in phones.SUPPORTED_OPERATORS for p in phones.OPERATOR_PREFIXES[op])
    country = "|".join(spaced(c) for c in ("+976", "00976", "976"))
    national = f"(?:{'|'.join(spaced(p) for p in prefixes)})(?:{sep}[0-9]){{6}}"
    return trimmed(f"{sep}(?:(?:{country}){sep})?{national}{sep}")


def _string(max_len, description, pattern=None, example=None):
    s = {"type": "string", "minLength": 1, "maxLength": max_len, "description": description}
    if pattern is not None:
        s["pattern"] = trimmed(pattern)
    if example is not None:
        s["example"] = example
    return s


TRIMMED = ("Surrounding ASCII whitespace is removed before the checks (maxLength counts it); "
           "what is left must match the pattern.")


def _products(catalogue):
    """Which productCode goes with which operator and type, from the active catalogue
    ({(operator, type): [codes]}): a well-formed order for a product we do not sell is a
    400 unknown_product, so the description names the products."""
    catalogue = {k: v for k, v in (catalogue or {}).items()
                 if k[0] in phones.SUPPORTED_OPERATORS and k[1] in catalog.RECHARGE_TYPES}
    if not catalogue:
        return {}
    return {"anyOf": [{"properties": {"productOperator": {"pattern": trimmed(re.escape(op))},
                                      "rechargeType": {"pattern": trimmed(re.escape(rtype))},
                                      "productCode": {"pattern": trimmed(_one_of(codes))}}}
                      for (op, rtype), codes in sorted(catalogue.items())]}


def schemas(catalogue=None):
    out = _schemas()
    products = _products(catalogue)
    if products:  # the patterns move into the branches: one pattern per field to generate from
        order = out["OrderRequest"]
        for name in ("productOperator", "rechargeType", "productCode"):
            order["properties"][name].pop("pattern")
        order.update(products)
    return out


def _schemas():
    supported_prefixes = sorted(p for op in phones.SUPPORTED_OPERATORS for p in phones.OPERATOR_PREFIXES[op])
    timestamp = {"type": "string", "format": "date-time", "example": "2026-01-18T10:00:00.123Z"}
    nullable_ts = {**timestamp, "nullable": True}
    return {
        "Error": {
            "type": "object",
            "description": "Every error the API returns (except the WeChat-style replies of the callback)",
            "required": ["error"],
            "additionalProperties": False,
            "properties": {"error": {
                "type": "object", "required": ["code", "message"], "additionalProperties": False,
                "properties": {
                    "code": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$",
                             "description": "stable, snake_case: what a program tests"},
                    "message": {"type": "string", "description": "for a person"},
                    "details": {"type": "object",
                                "description": "only with the few codes that carry data (price_changed)"},
                },
            }},
        },
        "Health": {
            "type": "object", "required": ["status", "database"],
            "properties": {"status": {"type": "string", "enum": ["ok", "degraded"]},
                           "database": {"type": "string", "enum": ["up", "down"]},
                           "operator": {"type": "string", "enum": ["up", "down"],
                                        "description": "down while the operator breaker is open "
                                                       "(new orders refused); the service is still up"},
                           "wechat": {"type": "string", "enum": ["open-api", "v3"],
                                      "description": "how WeChat Pay is called: Cloud Hosting's open API, "
                                                     "or API v3 directly"}},
        },
        "SweepSummary": {
            "type": "object", "additionalProperties": False,
            "required": ["found", "claimed", "settled", "flagged", "skipped", "errors", "unconfirmed", "seconds",
                         "bySelection", "more"],
            "properties": {**{k: {"type": "integer", "minimum": 0} for k in (
                "found", "claimed", "settled", "flagged", "skipped", "errors", "unconfirmed")},
                "seconds": {"type": "number", "minimum": 0},
                "bySelection": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0},
                                "description": "orders found, by the sweep's selection"},
                "more": {"type": "boolean", "description": "stopped at its time limit: call again"}},
        },
        "ReconcileRun": {
            "type": "object", "required": ["date", "status", "wechat", "ours", "breaks", "recovered"],
            "properties": {"date": {"type": "string", "pattern": "^[0-9]{8}$"},
                           "status": {"type": "string", "enum": ["balanced", "breaks", "resolved"]},
                           "wechat": {"type": "object"}, "ours": {"type": "object"},
                           "breaks": {"type": "array", "items": {"type": "object"}},
                           "recovered": {"type": "array", "items": {"type": "string"}}},
        },
        "ReconcileJobRequest": {
            "type": "object", "description": "Other keys are ignored.",
            "properties": {"date": {"type": "string", "pattern": "^[0-9]{8}$", "maxLength": 8,
                                    "description": "WeChat's bill day, YYYYMMDD, China time", "example": "20260118"}},
        },
        "PurgeSummary": {
            "type": "object", "additionalProperties": False, "required": ["purged", "before", "more"],
            "properties": {"purged": {"type": "integer", "minimum": 0},
                           "before": {"type": "string", "format": "date",
                                      "description": "notices received before this day (UTC) went"},
                           "more": {"type": "boolean", "description": "stopped at its time limit: call again"}},
        },
        "LoginRequest": {
            "type": "object", "required": ["code"],
            "description": "Other keys are ignored.",
            "properties": {"code": _string(128, "the mini-program's wx.login code: printable ASCII. " + TRIMMED,
                                           pattern=auth.LOGIN_CODE, example="081abcDEF")},
        },
        "LoginResponse": {
            "type": "object", "required": ["token", "expiresIn"],
            "properties": {"token": {"type": "string", "description": "send as Authorization: Bearer <token>"},
                           "expiresIn": {"type": "integer", "description": "seconds"}},
        },
        "Product": {
            "type": "object",
            "required": ["productCode", "productOperator", "rechargeType", "name", "engName", "days", "data",
                         "priceTg", "priceRmb", "totalFee"],
            "properties": {
                "productCode": {"type": "string", "maxLength": 32},
                "productOperator": {"type": "string", "maxLength": 16},
                "rechargeType": {"type": "string", "enum": list(catalog.RECHARGE_TYPES)},
                "name": {"type": "string", "maxLength": 100, "description": "as the operator names it"},
                "engName": {"type": "string", "maxLength": 100, "nullable": True,
                            "description": "the operator's English name"},
                "days": {"type": "integer", "nullable": True, "description": "days the package lasts"},
                "data": {"type": "string", "maxLength": 32, "nullable": True,
                         "description": "the data a DATA package carries, e.g. 5GB"},
                "priceTg": {"type": "integer", "description": "MNT"},
                "priceRmb": {"type": "string", "pattern": r"^[0-9]+\.[0-9]{2}$",
                             "description": "yuan, two places; priceRmb * 100 == totalFee"},
                "totalFee": {"type": "integer", "minimum": 1, "maximum": MAX_TOTAL_FEE,
                             "description": "fen: what WeChat Pay charges"},
            },
        },
        "ProductList": {
            "type": "object", "required": ["products"],
            "properties": {"products": {"type": "array", "items": {"$ref": "#/components/schemas/Product"}}},
        },
        "OrderRequest": {
            "type": "object",
            "required": ["phoneNumber", "productOperator", "rechargeType", "productCode"],
            "description": ("Other keys are ignored, except prices and states, which the server sets: "
                            "a body with any of " + ", ".join(orders_api.CLIENT_PRICE_FIELDS)
                            + " is a 400 price_not_accepted."),
            "not": {"anyOf": [{"required": [f]} for f in orders_api.CLIENT_PRICE_FIELDS]},
            "properties": {
                "phoneNumber": {**_string(
                    32, "A Mongolian number: 8 digits, optionally after +976, 00976 or 976; spaces, "
                        "dashes, dots and brackets are removed. It must be valid in the current Mongolian plan "
                        "(else 400 invalid_phone_number) and belong to productOperator "
                        f"(Unitel: {', '.join(supported_prefixes)}...), or it is a 400 "
                        "phone_operator_mismatch. " + TRIMMED, example="88888888"),
                    "pattern": _phone_pattern()},
                "productOperator": _string(16, "only these operators are sold (others: 400 "
                                               "unsupported_operator). " + TRIMMED,
                                           pattern=_one_of(phones.SUPPORTED_OPERATORS), example="UNITEL"),
                "rechargeType": _string(16, TRIMMED, pattern=_one_of(catalog.RECHARGE_TYPES), example="VOICE"),
                "productCode": _string(32, "a productCode of GET /products for this operator and type "
                                           "(the products on sale as this description was made). "
                                       + TRIMMED, pattern=catalog.PRODUCT_CODE, example="5000"),
                "vatRegisterNo": {
                    **_string(validators.MAX_LENGTH, "optional: a business customer's register number for the VAT "
                                              "e-receipt (e-barimt): 7 digits (a company), or 2 Cyrillic "
                                              "letters and 8 digits (a citizen's, for a sole trader); "
                                              "lower-case letters are made capitals. Empty or null: none. "
                                              "Anything else is a 400 invalid_vat_register_no. " + TRIMMED,
                              pattern=validators.REGISTER_NO, example="1234567"),
                    "minLength": 0, "nullable": True},
            },
        },
        "Order": {
            "type": "object",
            "required": ["orderNumber", "phoneNumber", "productOperator", "rechargeType", "productCode",
                         "productPriceTg", "productPriceRmb", "totalFee", "paymentStatus", "rechargeStatus",
                         "paidAt", "rechargedAt", "refundedAt", "createdAt", "vatRegisterNo", "receipt"],
            "properties": {
                "orderNumber": {"type": "string", "pattern": _anchored(common.ORDER_NUMBER),
                                "example": "ORD2026011810000012345678"},
                "phoneNumber": {"type": "string", "pattern": "^[0-9]{8}$", "description": "national number"},
                "productOperator": {"type": "string"},
                "rechargeType": {"type": "string", "enum": list(catalog.RECHARGE_TYPES)},
                "productCode": {"type": "string"},
                "productPriceTg": {"type": "integer", "description": "MNT"},
                "productPriceRmb": {"type": "string", "pattern": r"^[0-9]+\.[0-9]{2}$", "description": "yuan"},
                "totalFee": {"type": "integer", "description": "fen"},
                "paymentStatus": {"type": "string", "enum": [s.value for s in PaymentStatus],
                                  "description": "refunding: WeChat accepted the refund of a failed "
                                                 "top-up; refunded once WeChat confirms the money went back"},
                "rechargeStatus": {"type": "string", "enum": [s.value for s in RechargeStatus]},
                "paidAt": nullable_ts,
                "rechargedAt": nullable_ts,
                "refundedAt": nullable_ts,
                "createdAt": timestamp,
                "vatRegisterNo": {"type": "string", "nullable": True, "description": "as the order was created"},
                "receipt": {
                    "type": "object", "nullable": True,
                    "description": "the VAT e-receipt (e-barimt) the operator gave with the top-up; null before "
                                   "(and when it gave none)",
                    "required": ["billId", "lottery", "qrData", "amount", "vat"],
                    "properties": {
                        "billId": {"type": "string", "nullable": True},
                        "lottery": {"type": "string", "nullable": True, "description": "the receipt's lottery "
                                                                                       "number, e.g. KX 74016742"},
                        "qrData": {"type": "string", "nullable": True, "description": "for the receipt's QR code"},
                        "amount": {"type": "string", "nullable": True, "description": "MNT, as the operator wrote it"},
                        "vat": {"type": "string", "nullable": True, "description": "MNT, as the operator wrote it"},
                    },
                },
            },
        },
        "OrderList": {
            "type": "object", "required": ["orders", "nextCursor"],
            "properties": {
                "orders": {"type": "array", "items": {"$ref": "#/components/schemas/Order"},
                           "description": "newest first"},
                "nextCursor": {"type": "string", "pattern": "^[0-9]+$", "nullable": True,
                               "description": "pass as ?cursor= for the next page; null on the last"},
            },
        },
        "PaymentCreateRequest": {
            "type": "object", "required": ["orderNumber"],
            "description": "Other keys are ignored.",
            "properties": {"orderNumber": {
                **_string(32, "one of the caller's orders. A string that is not shaped like an order "
                              "number is a 404 order_not_found, as is another customer's order. " + TRIMMED,
                          pattern=common.ORDER_NUMBER)}},
        },
        "PaymentCreateResponse": {
            "type": "object", "required": ["orderNumber", "totalFee", "payment"],
            "properties": {
                "orderNumber": {"type": "string"},
                "totalFee": {"type": "integer", "description": "fen"},
                "payment": {
                    "type": "object", "description": "the parameters of wx.requestPayment, as WeChat gave them",
                    "required": ["appId", "timeStamp", "nonceStr", "package", "signType", "paySign"],
                    "properties": {k: {"type": "string", "nullable": True}
                                   for k in ("appId", "timeStamp", "nonceStr", "package", "signType", "paySign")},
                },
            },
        },
        "WeChatNotice": {
            "type": "object",
            "description": ("A WeChat Pay (Cloud Hosting) payment notice, as WeChat sends it. Tolerant on "
                            "purpose: any JSON object with returnCode is a notice, whatever its fields "
                            "hold. It is checked against the stored order (amount, outTradeNo, the order "
                            "number in attach, result codes) and confirmed with WeChat's order query "
                            "before the order is marked paid; a field missing, of another type or value "
                            "is a check that fails (recorded as rejected, answered errcode 0), not a "
                            "400, so that WeChat stops delivering a notice we have on record. Nothing in "
                            "it is believed: a rejected notice flags the order only when the order query "
                            "confirms a payment that disagrees with the order."),
            "required": ["returnCode"],
            "properties": {
                **{k: {"description": "as WeChat sends it: a string"} for k in (
                    "returnCode", "resultCode", "appid", "mchId", "subAppid", "subMchId", "nonceStr",
                    "openid", "subOpenid", "tradeType", "bankType", "feeType", "transactionId",
                    "outTradeNo", "timeEnd")},
                "attach": {"description": 'as we sent it: a string holding JSON {"orderNumber": "..."}'},
                "totalFee": {"description": "fen, an integer"},
                "cashFee": {"description": "fen, an integer"},
            },
        },
        "WeChatRefundNotice": {
            "type": "object",
            "description": ("A WeChat Pay (Cloud Hosting) refund notice, as WeChat sends it (the refund "
                            "request names this path, with callback_type 2). Any body is recorded first; "
                            "its outTradeNo and outRefundNo are checked against the order, and only "
                            "WeChat's refund query (/_/pay/queryrefund saying SUCCESS) makes the order "
                            "refunded -- never the body. A payment notice sent here changes nothing "
                            "(recorded, answered, logged wrong_callback_path). Tolerant on purpose, as the "
                            "payment notice: a field of another type or value is recorded and believed "
                            "in nothing, not a 400."),
            "anyOf": [{"required": [f]} for f in REFUND_NOTICE_FIELDS],
            "properties": {
                **{k: {"description": "as WeChat sends it: a string"} for k in (
                    "returnCode", "appid", "mchId", "subAppid", "subMchId", "nonceStr", "transactionId",
                    "outTradeNo", "refundId", "outRefundNo", "successTime", "refundRecvAccout",
                    "refundAccount", "refundRequestSource")},
                "refundStatus": {"description": "SUCCESS, CHANGE or REFUNDCLOSE"},
                "totalFee": {"description": "fen, an integer"},
                "refundFee": {"description": "fen, an integer"},
                "settlementRefundFee": {"description": "fen, an integer"},
            },
        },
        "WeChatReply": {
            "type": "object", "required": ["errcode", "errmsg"],
            "description": "errcode 0: recorded (also when rejected); 1: WeChat should retry",
            "properties": {"errcode": {"type": "integer", "enum": [0, 1]}, "errmsg": {"type": "string"}},
        },
        "ConsentRequest": {
            "type": "object", "required": ["results"],
            "description": "What wx.requestSubscribeMessage's success callback gave, its errMsg left out. "
                           "Other keys are ignored.",
            "properties": {"results": {
                "type": "object", "minProperties": 1, "maxProperties": consent.MAX_TEMPLATES,
                "description": "templateId (one of GET /notifications' templates; another is a 400 "
                               "unknown_template) -> the customer's choice: each accept allows one "
                               "message of that template",
                "additionalProperties": {"type": "string", "enum": list(consent.CHOICES)},
                "example": {"tmplRecharged000000000000000000000000000001": "accept"},
            }},
        },
        "Consents": {
            "type": "object", "required": ["templates"],
            "properties": {"templates": {"type": "array", "items": {
                "type": "object", "required": ["kind", "templateId", "credits", "lastChoice", "chosenAt"],
                "properties": {
                    "kind": {"type": "string", "enum": list(fields.KINDS)},
                    "templateId": {"type": "string", "description": "what wx.requestSubscribeMessage asks for"},
                    "credits": {"type": "integer", "minimum": 0, "maximum": consent.MAX_CREDITS,
                                "description": "messages of this kind the customer has allowed and not yet had"},
                    "lastChoice": {"type": "string", "enum": list(consent.CHOICES), "nullable": True},
                    "chosenAt": nullable_ts,
                }}}},
        },
    }
