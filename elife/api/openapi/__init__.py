"""The OpenAPI 3.0 description of the HTTP API, served at GET /openapi.json.

It is built from the constants the code checks with -- the patterns in api/orders.py and
api/common.py, the supported operators and recharge types, the states in models.py and
the body limit in the settings -- so that a changed rule changes the description too.
tests/test_openapi.py checks that its paths are exactly the app's routes; tests/test_fuzz.py
checks that every status and error code the service answers is one described here.

Error codes are listed per operation and status (an `enum` on `error.code`), in the order
the code checks them.
"""
import re

from flask import Blueprint, jsonify

from ... import config
from ...fulfil import refunds
from ...models import PAYMENT_STATUSES, RECHARGE_STATUSES
from ...shop import catalog, phones, product_admin, rates, vat
from ...shop.pricing import MAX_TOTAL_FEE
from ...shop.rates import MAX_MOVE
from .. import admin as admin_api
from .. import auth, common
from .. import orders as orders_api
from ..common import SANE_REQUEST_ID

bp = Blueprint("openapi", __name__)

OPENAPI_VERSION = "3.0.3"
API_VERSION = "1.0.0"

# -- error codes, by where they come from --------------------------------------------------
BODY_ERRORS = ["missing_body", "malformed_json", "body_not_object"]      # common.json_object
FIELD_ERRORS = ["missing_field", "invalid_field"]                         # common.string_field
CUSTOMER_401 = ["missing_token", "invalid_token", "token_expired", "invalid_openid"]  # auth.current_user
ADMIN_401 = ["missing_token"]
ADMIN_403 = ["forbidden", "csrf_failed"]


def _anchored(regex):
    """Python's fullmatch() pattern as an OpenAPI (ECMA-262, unanchored) pattern."""
    return f"^{regex.pattern}$" if "|" not in regex.pattern else f"^(?:{regex.pattern})$"


def _error(description, codes, headers=None, html=False, details=None):
    """A JSON error response whose `error.code` is one of `codes` (and, for the codes that
    carry data, `error.details` as `details` describes)."""
    properties = {"code": {"type": "string", "enum": list(codes)}, "message": {"type": "string"}}
    if details is not None:
        properties["details"] = details
    schema = {
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {"error": {
            "type": "object",
            "required": ["code", "message"],
            "additionalProperties": False,
            "properties": properties,
        }},
    }
    resp = {"description": description, "content": {"application/json": {"schema": schema}}}
    if html:
        resp["content"]["text/html"] = {"schema": {"type": "string"}}
    if headers:
        resp["headers"] = headers
    return resp


def _retry_after(what):
    return {"Retry-After": {"description": what, "schema": {"type": "integer", "minimum": 1}}}


def _json(description, schema):
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _common(limit_bytes, *, body=False, database=True, limited=False):
    """The responses many operations share: 413, 429, 503."""
    out = {}
    if body:
        out["413"] = _error(f"the body is larger than {limit_bytes} bytes (refused before it is read)",
                            ["body_too_large"])
    if limited:
        out["429"] = _error("over an abuse limit (shared by every worker and host)", ["rate_limited"],
                            _retry_after("seconds until the limit's window ends"))
    if database:
        out["503"] = _error("the database is unavailable for a moment", ["database_unavailable"],
                            _retry_after("seconds to wait before trying again"))
    return out


def _json_body(ref, description, required=True):
    return {"required": required, "description": description,
            "content": {"application/json": {"schema": {"$ref": ref}}}}


def _form_body(properties, required=()):
    schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return {"required": bool(required),
            "content": {"application/x-www-form-urlencoded": {"schema": schema},
                        "multipart/form-data": {"schema": schema}}}


def _customer_security(settings):
    return [{"bearerAuth": []}] + ([{"wxOpenid": []}] if settings.TRUST_WX_HEADERS else [])


def _admin_security():
    return [{"adminBearer": []}, {"adminCookie": []}]


def _admin_responses(ok, *, codes400=None, codes404=False, codes409=None, html_ok=True):
    """Responses of an /admin operation: JSON errors for API clients, pages for browsers."""
    out = dict(ok)
    if codes400:
        out["400"] = _error("a bad parameter or form field", codes400, html=True)
    out["401"] = _error("no admin token or login cookie (a browser gets the login page)", ADMIN_401,
                        {"WWW-Authenticate": {"schema": {"type": "string"}}}, html=True)
    out["403"] = _error("a wrong admin token, or a cookie-authenticated form without its CSRF token",
                        ADMIN_403, html=True)
    out["429"] = _admin_locked_out()
    if codes404:
        out["404"] = (_error("no such order", ["order_not_found"], html=True) if codes404 is True
                      else _error("no such reconciliation day (or break)", codes404, html=True))
    if codes409:
        out["409"] = _error("the order is not in a state that allows this action", codes409, html=True)
    out["503"] = _error("the database is unavailable for a moment", ["database_unavailable"],
                        _retry_after("seconds to wait before trying again"), html=True)
    return out


# The one answer that is not JSON: gunicorn's own page, for a request the app never sees.
GUNICORN_ERRORS = {
    "414": {"description": "the request line (method, path and query) is longer than gunicorn's "
                           "limit_request_line (4094 bytes): gunicorn's own HTML page, not JSON",
            "content": {"text/html": {"schema": {"type": "string"}}}},
    "431": {"description": "more than 100 headers, or one longer than 8190 bytes (gunicorn's "
                           "limit_request_fields, limit_request_field_size): gunicorn's own HTML page, "
                           "not JSON",
            "content": {"text/html": {"schema": {"type": "string"}}}},
}
NAME_FIELD = {"type": "string", "description": "who, for the audit trail: tidied and cut to 40 characters "
                                               "(anything unusable is just 'admin')"}


def _admin_locked_out():
    return _error("too many wrong admin tokens from this address (LIMIT_ADMIN_FAILURES_PER_MINUTE, Bearer "
                  "and login form together): refused for the rest of the minute, the right token too",
                  ["rate_limited"], _retry_after("seconds until the minute ends"), html=True)


ONCE = " Given at most once (twice is a 400 invalid_parameter)."
EMPTY_IS_DEFAULT = " An empty value is the default." + ONCE


def _query(name, description, schema, empty=False):
    """A query parameter as common.query_arg reads it: once; `empty`: an empty value is
    taken as if the parameter were absent (OpenAPI's allowEmptyValue)."""
    p = {"name": name, "in": "query", "required": False, "schema": schema,
         "description": description + (EMPTY_IS_DEFAULT if empty else ONCE)}
    if empty:
        p["allowEmptyValue"] = True
    return p


def _window_params():
    return [
        _query("hours", "the window of the success-rate and delay reports, in hours",
               {"type": "integer", "minimum": 1, "maximum": 24 * 30, "default": 24}, empty=True),
        _query("days", "the window of the anomaly report, in days",
               {"type": "integer", "minimum": 1, "maximum": 90, "default": 7}, empty=True),
    ]


def _message_param():
    return _query("m", "a message to show, as the actions' redirects sign it (any other value is ignored)",
                  {"type": "string"})


# What common.string_field removes around a value before checking it, as a class.
_TRIM = "[" + "".join(f"\\x{ord(c):02x}" for c in common.TRIM) + "]"


def trimmed(core):
    """The pattern of a string field: `core` (a regex, or a compiled one), with the
    ASCII whitespace string_field removes allowed around it."""
    core = getattr(core, "pattern", core)
    return f"^{_TRIM}*(?:{core}){_TRIM}*$"


def _one_of(words):
    return "|".join(re.escape(w) for w in words)


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


REQUEST_ID_PARAM = {
    "name": "X-Request-Id", "in": "header", "required": False,
    "description": ("the caller's id for this request: echoed in the answer, on every log line "
                    "(req=<id>) and on the audit rows of the WeChat and Unitel calls it makes, when it "
                    "is 1-64 of A-Z a-z 0-9 . _ -; anything else is replaced by a new one"),
    # Tolerant on purpose: any other value is not refused, it is replaced by a new id.
    "schema": {"type": "string"},
}
REQUEST_ID_HEADER = {
    "description": "the request's id: the caller's X-Request-Id when sane, else a new one (32 hex digits)",
    "schema": {"type": "string", "pattern": _anchored(SANE_REQUEST_ID)},
}


def _catalogue_paths():
    """/admin/catalogue, /admin/rate, /admin/products...: the rate and the catalogue."""
    page = {"200": {"description": "the page", "content": {"text/html": {"schema": {"type": "string"}}}}}
    who = {"name": {"type": "string", "description": "who, for the history (cut to 40 characters)"},
           "csrf_token": {"type": "string", "description": "required with the login cookie"}}
    note = {"note": {"type": "string", "maxLength": 255, "description": "why (kept with the change)"}}
    required_note = {"note": {**note["note"], "minLength": 1, "pattern": "[^ \t\n\r]"}}
    force = {"force": {"type": "string",  # tolerant on purpose: any other value confirms nothing
                       "description": f"1, true, on or yes confirms a move of more than {int(MAX_MOVE * 100)} %"}}
    product_params = [
        {"name": "operator", "in": "path", "required": True, "schema": {"type": "string",
                                                                         "enum": list(phones.OPERATOR_CODES)}},
        {"name": "rechargeType", "in": "path", "required": True,
         "schema": {"type": "string", "enum": list(catalog.RECHARGE_TYPES)}},
        {"name": "code", "in": "path", "required": True,
         "schema": {"type": "string", "pattern": _anchored(product_admin.CODE)}},
    ]
    product_400 = ["invalid_operator", "invalid_recharge_type", "invalid_product_code"]

    def change(op_id, summary, form, required, codes400, codes409, params=(), codes404=None):
        responses = _admin_responses(
            {"200": _json("done (an API client): what it is now", {"type": "object"}),
             "303": {"description": "a browser: back to /admin/catalogue with a message (also when refused)",
                     "headers": {"Location": {"schema": {"type": "string"}}}}},
            codes400=codes400)
        if codes404:
            responses["404"] = _error("no such product", codes404, html=True)
        if codes409:
            responses["409"] = _error(
                "refused as things are: a move of more than 10 % without force (a browser gets the "
                "confirmation page), a change made meanwhile, or a product that exists", codes409, html=True)
        return {"post": {
            "tags": ["admin"], "operationId": op_id, "security": _admin_security(), "summary": summary,
            "parameters": list(params),
            "requestBody": _form_body({**form, **who}, required=required),
            "responses": responses,
        }}

    return {
        "/admin/catalogue": {"get": {
            "tags": ["admin"], "operationId": "adminCatalogue", "security": _admin_security(),
            "summary": "the exchange rate with its last ten, every product, the catalogue's changes, and their forms",
            "parameters": [{"name": "m", "in": "query", "required": False, "schema": {"type": "string"},
                            "description": "a signed message to show"}],
            "responses": _admin_responses(page),
        }},
        "/admin/catalogue.json": {"get": {
            "tags": ["admin"], "operationId": "adminCatalogueJson", "security": _admin_security(),
            "summary": "the same as JSON",
            "responses": _admin_responses({"200": _json("rate, rateHistory, products, changes", {
                "type": "object", "required": ["rate", "rateHistory", "products", "changes"],
                "properties": {"rate": {"type": "object", "nullable": True},
                               "rateHistory": {"type": "array", "items": {"type": "object"}},
                               "products": {"type": "array", "items": {"type": "object"}},
                               "changes": {"type": "array", "items": {"type": "object"}}}})}),
        }},
        "/admin/rate": change(
            "adminSetRate", "make a new MNT->CNY rate active (the old one is kept, inactive)",
            {"rate": {"type": "string", "pattern": r"^(?=[0-9.]*[1-9])[0-9]{1,10}(\.[0-9]{1,8})?$",
                      "description": "yuan for one tugrik: a positive decimal, at most 8 places"},
             **required_note, **force}, ["rate", "note"], ["invalid_rate", "missing_note", "note_too_long"],
            ["rate_change_too_large", "rate_changed_meanwhile"]),
        "/admin/products": change(
            "adminAddProduct", "add a denomination",
            {"operator": {"type": "string", "enum": list(phones.OPERATOR_CODES)},
             "rechargeType": {"type": "string", "enum": list(catalog.RECHARGE_TYPES)},
             "code": {"type": "string", "pattern": _anchored(product_admin.CODE)},
             "price": {"type": "string", "pattern": "^[1-9][0-9]{0,7}$", "description": "whole tugrik, above 0"},
             "productName": {"type": "string", "minLength": 1, "maxLength": product_admin.NAME_MAX,
                             "pattern": "[^ \t\n\r]"},
             "disabled": {"type": "string", "description": "1: add it off sale"}, **note},
            ["operator", "rechargeType", "code", "price", "productName"],
            product_400 + ["invalid_price", "invalid_name", "note_too_long"], ["product_exists", "price_unavailable"]),
        "/admin/products/{operator}/{rechargeType}/{code}/disable": change(
            "adminDisableProduct", "take a product off sale (orders already made are untouched)", note, (),
            product_400 + ["note_too_long"], [], product_params, ["unknown_product"]),
        "/admin/products/{operator}/{rechargeType}/{code}/enable": change(
            "adminEnableProduct", "put a product back on sale", note, (),
            product_400 + ["note_too_long"], [], product_params, ["unknown_product"]),
        "/admin/products/{operator}/{rechargeType}/{code}/price": change(
            "adminSetProductPrice", "set a product's MNT price (orders already made keep theirs)",
            {"price": {"type": "string", "pattern": "^[1-9][0-9]{0,7}$", "description": "whole tugrik, above 0"},
             **note, **force}, ["price"], product_400 + ["invalid_price", "note_too_long"],
            ["price_change_too_large", "product_changed_meanwhile", "price_unavailable"], product_params,
            ["unknown_product"]),
    }


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
                                                       "(new orders refused); the service is still up"}},
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
                                       + TRIMMED, pattern=orders_api._CODE, example="5000"),
                "vatRegisterNo": {
                    **_string(vat.MAX_LENGTH, "optional: a business customer's register number for the VAT "
                                              "e-receipt (e-barimt): 7 digits (a company), or 2 Cyrillic "
                                              "letters and 8 digits (a citizen's, for a sole trader); "
                                              "lower-case letters are made capitals. Empty or null: none. "
                                              "Anything else is a 400 invalid_vat_register_no. " + TRIMMED,
                              pattern=vat.REGISTER_NO, example="1234567"),
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
                "paymentStatus": {"type": "string", "enum": list(PAYMENT_STATUSES),
                                  "description": "refunding: WeChat accepted the refund of a failed "
                                                 "top-up; refunded once WeChat confirms the money went back"},
                "rechargeStatus": {"type": "string", "enum": list(RECHARGE_STATUSES)},
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
            "anyOf": [{"required": [f]} for f in refunds.REFUND_NOTICE_FIELDS],
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
    }


@bp.get("/openapi.json")
def openapi():
    return jsonify(build_spec(config.current(), catalog.active_codes()))


def build_spec(settings, catalogue=None):
    limit = settings.MAX_BODY_BYTES
    order_number_param = {
        "name": "orderNumber", "in": "path", "required": True,
        "description": "anything not shaped like an order number is a 404 order_not_found",
        "schema": {"type": "string", "pattern": _anchored(common.ORDER_NUMBER)},
    }
    admin_order_param = {**order_number_param}
    paths = {
        "/health": {"get": {
            "tags": ["meta"], "operationId": "health", "summary": "liveness and database check",
            "security": [],
            "responses": {
                "200": _json("up", {"$ref": "#/components/schemas/Health"}),
                "503": _json("the database is unreachable ({\"status\":\"degraded\",\"database\":\"down\"})",
                             {"$ref": "#/components/schemas/Health"}),
            },
        }},
        "/openapi.json": {"get": {
            "tags": ["meta"], "operationId": "openapi", "summary": "this description", "security": [],
            "responses": {"200": _json("the OpenAPI 3.0 description", {"type": "object"}),
                          **_common(limit)},  # it names the products on sale, read from the database
        }},
        "/auth/login": {"post": {
            "tags": ["customer"], "operationId": "login", "security": [],
            "summary": "exchange a mini-program login code (WeChat code2Session) for our token",
            "description": "The per-address login limit is counted before the body is read.",
            "requestBody": _json_body("#/components/schemas/LoginRequest", "the login code"),
            "responses": {
                "200": _json("logged in", {"$ref": "#/components/schemas/LoginResponse"}),
                "400": _error("the body or the code is not acceptable", BODY_ERRORS + FIELD_ERRORS),
                "401": _error("WeChat did not accept the code", ["invalid_code"]),
                "502": _error("WeChat could not be reached", ["wechat_unavailable"]),
                **_common(limit, body=True, limited=True),
            },
        }},
        "/products": {"get": {
            "tags": ["customer"], "operationId": "listProducts", "security": [],
            "summary": "the catalogue, priced in fen at the active exchange rate",
            "parameters": [
                _query("operator", "only this operator's products; an empty value is no filter.",
                       {"type": "string", "pattern": _anchored(orders_api._NAME), "example": "UNITEL"}, empty=True),
                _query("rechargeType", "only products of this type; an empty value is no filter.",
                       {"type": "string", "pattern": _anchored(orders_api._NAME), "example": "VOICE"}, empty=True),
            ],
            "responses": {
                "200": _json("the active products (possibly none)", {"$ref": "#/components/schemas/ProductList"}),
                "400": _error("a filter is not an upper-case name, or is given twice",
                              ["invalid_filter", "invalid_parameter"]),
                "503": _error("no exchange rate, or the database is unavailable",
                              ["no_exchange_rate", "database_unavailable"],
                              _retry_after("with database_unavailable: seconds to wait")),
            },
        }},
        "/orders": {
            "post": {
                "tags": ["customer"], "operationId": "createOrder", "security": _customer_security(settings),
                "summary": "create an order (the price is the server's)",
                "description": ("Checked in this order: the caller (401), the body, the Idempotency-Key, "
                                "each field, the operator, the VAT register number, the product, the "
                                "price; then the operator's live package list for this number (kept "
                                "for UNITEL_PRICE_CACHE_SECONDS; when the operator cannot be asked the "
                                "order is priced from our table); then the per-user "
                                "order limits (429). With an Idempotency-Key already used by this "
                                "customer in the last 24 hours, the order it made is returned (200) "
                                "when it is the same order (number, operator, type, product, VAT "
                                "register number), else a 422."),
                "parameters": [{
                    "name": "Idempotency-Key", "in": "header", "required": False,
                    "schema": {"type": "string", "pattern": _anchored(orders_api._KEY),
                               "minLength": 1, "maxLength": 64},
                }],
                "requestBody": _json_body("#/components/schemas/OrderRequest", "what to top up"),
                "responses": {
                    "201": _json("created", {"$ref": "#/components/schemas/Order"}),
                    "200": _json("the order an earlier request with this Idempotency-Key made",
                                 {"$ref": "#/components/schemas/Order"}),
                    "400": _error("the body, a field or the Idempotency-Key is not acceptable",
                                  BODY_ERRORS + ["price_not_accepted", "invalid_idempotency_key"]
                                  + FIELD_ERRORS + ["unsupported_operator", "invalid_recharge_type",
                                                    "invalid_phone_number", "phone_operator_mismatch",
                                                    "invalid_vat_register_no", "unknown_product",
                                                    "product_unavailable_for_number"]),
                    "401": _error("not logged in", CUSTOMER_401),
                    "409": _error("the product is off sale (product_unavailable), the key's first request "
                                  "is still running, this product would cost nothing (or too much) at the "
                                  "active rate, or the operator's price for it moved (price_changed: "
                                  "details.priceTg is the operator's price now; the product is not sold "
                                  "until the catalogue follows)",
                                  ["product_unavailable", "idempotency_key_in_use", "price_unavailable",
                                   "price_changed"],
                                  details={"type": "object", "required": ["priceTg", "previousPriceTg"],
                                           "properties": {"priceTg": {"type": "integer",
                                                                      "description": "the operator's, MNT"},
                                                          "previousPriceTg": {"type": "integer",
                                                                              "description": "ours, MNT"}}}),
                    "422": _error("the Idempotency-Key was used for a different order",
                                  ["idempotency_key_reused"]),
                    **_common(limit, body=True, limited=True),
                    "503": _error("no exchange rate is configured, the operator is not answering "
                                  "(its breaker is open), or the database is unavailable",
                                  ["no_exchange_rate", "operator_unavailable", "database_unavailable"],
                                  _retry_after("with operator_unavailable or database_unavailable: "
                                               "seconds to wait")),
                },
            },
            "get": {
                "tags": ["customer"], "operationId": "listOrders", "security": _customer_security(settings),
                "summary": "the caller's own orders, newest first (keyset pages)",
                "parameters": [
                    _query("limit", "orders per page; ASCII digits only.",
                           {"type": "integer", "minimum": 1, "maximum": orders_api.MAX_LIMIT, "default": 20},
                           empty=True),
                    _query("cursor", "the nextCursor of the previous page; ASCII digits only.",
                           {"type": "integer", "minimum": 1, "maximum": 2 ** 62}, empty=True),
                ],
                "responses": {
                    "200": _json("a page of orders", {"$ref": "#/components/schemas/OrderList"}),
                    "400": _error("limit or cursor is not a whole number in range, or is given twice",
                                  ["invalid_parameter"]),
                    "401": _error("not logged in", CUSTOMER_401),
                    **_common(limit),
                },
            },
        },
        "/orders/{orderNumber}": {"get": {
            "tags": ["customer"], "operationId": "getOrder", "security": _customer_security(settings),
            "summary": "one of the caller's orders (another customer's is a 404)",
            "parameters": [order_number_param],
            "responses": {
                "200": _json("the order", {"$ref": "#/components/schemas/Order"}),
                "401": _error("not logged in", CUSTOMER_401),
                "404": _error("no such order of the caller's", ["order_not_found"]),
                **_common(limit),
            },
        }},
        "/payment/create": {"post": {
            "tags": ["customer"], "operationId": "createPayment", "security": _customer_security(settings),
            "summary": "create (or re-create) the WeChat Pay trade of an unpaid order",
            "requestBody": _json_body("#/components/schemas/PaymentCreateRequest", "the order to pay"),
            "responses": {
                "200": _json("the parameters for wx.requestPayment",
                             {"$ref": "#/components/schemas/PaymentCreateResponse"}),
                "400": _error("the body or orderNumber is not acceptable", BODY_ERRORS + FIELD_ERRORS),
                "401": _error("not logged in", CUSTOMER_401),
                "404": _error("no such order of the caller's", ["order_not_found"]),
                "409": _error("the order is already paid or refunded, or older than its payment "
                              "window (ORDER_TTL_SECONDS): create a new order",
                              ["order_already_paid", "order_expired"]),
                "502": _error("WeChat Pay could not be reached or refused",
                              ["wechat_unavailable", "wechat_rejected"]),
                **_common(limit, body=True, limited=True),
                "503": _error("the operator is not answering (its breaker is open), or the database "
                              "is unavailable", ["operator_unavailable", "database_unavailable"],
                              _retry_after("seconds to wait before trying again")),
            },
        }},
        "/payment/callback/{orderNumber}": {"post": {
            "tags": ["wechat"], "operationId": "paymentCallback", "security": [],
            "summary": "WeChat Pay's payment notice (Cloud Hosting, callback_type 2)",
            "description": ("Anyone can call this, so nothing in a notice is believed without WeChat's "
                            "order query. Every body for one of our orders is recorded, with the first "
                            "decision about it, up to LIMIT_NOTICES_PER_ORDER_PER_HOUR per order number "
                            "(then 429, stored nothing: WeChat delivers again later); one for an order "
                            "number we do not have is counted and logged, not stored. The answer is "
                            '{"errcode":0,"errmsg":"OK"} once the notice is recorded -- also when it '
                            "was rejected, or names no order of ours -- so that WeChat stops retrying; "
                            '{"errcode":1} when WeChat\'s order query could not confirm the payment, so '
                            "that WeChat tries again. A refund notice sent here changes nothing "
                            "(recorded, answered, logged wrong_callback_path). "
                            + ("With REQUIRE_WX_SOURCE only requests carrying X-WX-SOURCE (set by Cloud "
                               "Hosting) are accepted." if settings.REQUIRE_WX_SOURCE else "")),
            "parameters": [{
                "name": "orderNumber", "in": "path", "required": True,
                "description": "the order number the trade was created with (any text is recorded)",
                "schema": {"type": "string"},
            }, {
                "name": "X-WX-SOURCE", "in": "header", "required": bool(settings.REQUIRE_WX_SOURCE),
                "description": "set by WeChat Cloud Hosting" + ("; required (REQUIRE_WX_SOURCE)"
                                                                if settings.REQUIRE_WX_SOURCE else ""),
                "schema": {"type": "string"},
            }],
            "requestBody": _json_body("#/components/schemas/WeChatNotice", "the notice (any bytes are recorded)"),
            "responses": {
                "200": _json("recorded", {"$ref": "#/components/schemas/WeChatReply"}),
                "400": _error("the body is not JSON, or not a WeChat Pay notice (recorded when the order is ours)",
                              ["malformed_json", "not_a_notice"]),
                **({"403": _error("X-WX-SOURCE is missing: not from Cloud Hosting (recorded)",
                                  ["not_from_platform"])} if settings.REQUIRE_WX_SOURCE else {}),
                "429": _error("more notices for this order number this hour than "
                              "LIMIT_NOTICES_PER_ORDER_PER_HOUR (not recorded)", ["rate_limited"],
                              _retry_after("seconds until the hour's window ends")),
                **_common(limit, body=True),
            },
        }},
        "/payment/refund-callback/{orderNumber}": {"post": {
            "tags": ["wechat"], "operationId": "refundCallback", "security": [],
            "summary": "WeChat Pay's refund notice (Cloud Hosting, callback_type 2)",
            "description": ("Every body is recorded, with the decision about it. The order becomes "
                            "refunded only when WeChat's refund query says SUCCESS, and paid again, "
                            "flagged refund_failed, when it says REFUNDCLOSE or CHANGE. The answer is "
                            '{"errcode":0,"errmsg":"OK"} once recorded -- also for a notice that is '
                            "not confirmed, names no order of ours, or is a payment notice sent to "
                            'this path; {"errcode":1} when the refund query could not be asked, so '
                            "that WeChat tries again. "
                            + ("With REQUIRE_WX_SOURCE only requests carrying X-WX-SOURCE are accepted."
                               if settings.REQUIRE_WX_SOURCE else "")),
            "parameters": [{
                "name": "orderNumber", "in": "path", "required": True,
                "description": "the order whose refund it is (any text is recorded)",
                "schema": {"type": "string"},
            }, {
                "name": "X-WX-SOURCE", "in": "header", "required": bool(settings.REQUIRE_WX_SOURCE),
                "description": "set by WeChat Cloud Hosting" + ("; required (REQUIRE_WX_SOURCE)"
                                                                if settings.REQUIRE_WX_SOURCE else ""),
                "schema": {"type": "string"},
            }],
            "requestBody": _json_body("#/components/schemas/WeChatRefundNotice",
                                      "the notice (any bytes are recorded)"),
            "responses": {
                "200": _json("recorded", {"$ref": "#/components/schemas/WeChatReply"}),
                "400": _error("the body is not JSON, or not a WeChat Pay notice (recorded all the same)",
                              ["malformed_json", "not_a_notice"]),
                **({"403": _error("X-WX-SOURCE is missing: not from Cloud Hosting (recorded)",
                                  ["not_from_platform"])} if settings.REQUIRE_WX_SOURCE else {}),
                **_common(limit, body=True),
            },
        }},
        # -- the operator's page ----------------------------------------------------------
        "/admin": {"get": {
            "tags": ["admin"], "operationId": "adminIndex", "security": _admin_security(),
            "summary": "the operator's page: the four reports with charts, the reconciliation days, "
                       "and the anomalies",
            "parameters": _window_params() + [_message_param()],
            "responses": _admin_responses(
                {"200": {"description": "the page", "content": {"text/html": {"schema": {"type": "string"}}}}},
                codes400=["invalid_parameter"]),
        }},
        "/admin/reports.json": {"get": {
            "tags": ["admin"], "operationId": "adminReports", "security": _admin_security(),
            "summary": "the four reports and the reconciliation's state as JSON",
            "parameters": _window_params(),
            "responses": _admin_responses(
                {"200": _json("generatedAt, successRate, anomalies, delay, pending, reconciliation, alert",
                              {"type": "object",
                               "required": ["generatedAt", "successRate", "anomalies", "delay", "pending",
                                            "reconciliation", "alert"],
                               "properties": {"generatedAt": {"type": "string", "format": "date-time"},
                                              "successRate": {"type": "object"},
                                              "anomalies": {"type": "object"},
                                              "delay": {"type": "object"},
                                              "pending": {"type": "object"},
                                              "reconciliation": {"type": "object"},
                                              "alert": {"type": "boolean"}}})},
                codes400=["invalid_parameter"]),
        }},
        "/admin/login": {
            "get": {
                "tags": ["admin"], "operationId": "adminLoginForm", "security": [],
                "summary": "the browser login form",
                "parameters": [_query("next", "where to go afterwards: a path inside /admin (anything else "
                                              "is /admin)", {"type": "string"})],
                "responses": {"200": {"description": "the form",
                                      "content": {"text/html": {"schema": {"type": "string"}}}},
                              "400": _error("next is given twice", ["invalid_parameter"], html=True)},
            },
            "post": {
                "tags": ["admin"], "operationId": "adminLogin", "security": [],
                "summary": "log a browser in with the admin token: sets the elife_admin cookie",
                "requestBody": _form_body({
                    "token": {"type": "string", "description": "ADMIN_TOKEN"},
                    "name": NAME_FIELD,
                    "next": {"type": "string", "description": "a path inside /admin (anything else is /admin)"},
                }, required=["token"]),
                "responses": {
                    "303": {"description": "logged in: to `next` (default /admin), with the cookie",
                            "headers": {"Location": {"schema": {"type": "string"}},
                                        "Set-Cookie": {"schema": {"type": "string"}}}},
                    "403": _error("not the admin token (a browser gets the form again)", ["forbidden"], html=True),
                    "429": _admin_locked_out(),
                    "503": _error("the database is unavailable for a moment", ["database_unavailable"],
                                  _retry_after("seconds to wait before trying again"), html=True),
                },
            },
        },
        "/admin/logout": {"post": {
            "tags": ["admin"], "operationId": "adminLogout", "security": _admin_security(),
            "summary": "end the browser session (a cookie-authenticated form carries csrf_token)",
            "requestBody": {"required": False,
                            "description": ("with the login cookie, the form field csrf_token; with a Bearer "
                                            "token nothing: the body is not read (any is accepted)"),
                            "content": {t: {"schema": {"description": "any"}} for t in
                                        ("application/x-www-form-urlencoded", "multipart/form-data")}},
            "responses": _admin_responses({"303": {"description": "to the login form; the session ends (its "
                                                                 "cookie is cleared and no longer accepted)"}}),
        }},
        "/admin/orders/{orderNumber}": {"get": {
            "tags": ["admin"], "operationId": "adminOrder", "security": _admin_security(),
            "summary": "one order with its payment notices, operator calls and audit trail",
            "parameters": [admin_order_param, _message_param()],
            "responses": _admin_responses(
                {"200": {"description": "the page", "content": {"text/html": {"schema": {"type": "string"}}}}},
                codes400=["invalid_parameter"], codes404=True),
        }},
        "/admin/orders/{orderNumber}.json": {"get": {
            "tags": ["admin"], "operationId": "adminOrderJson", "security": _admin_security(),
            "summary": "one order as JSON: its columns (the phone number masked), payment notices, "
                       "operator calls, order events, and the actions it allows",
            "parameters": [admin_order_param],
            "responses": _admin_responses(
                {"200": _json("order, notices, operatorCalls, events, receipt, actions",
                              {"type": "object",
                               "required": ["order", "notices", "operatorCalls", "events", "receipt", "actions"],
                               "properties": {"order": {"type": "object"},
                                              "receipt": {"type": "object", "nullable": True,
                                                          "description": "as in GET /orders/{orderNumber}"},
                                              "notices": {"type": "array", "items": {"type": "object"}},
                                              "operatorCalls": {"type": "array", "items": {"type": "object"}},
                                              "events": {"type": "array", "items": {"type": "object"}},
                                              "actions": {"type": "object"}}})},
                codes404=True),
        }},
    }
    day_param = {"name": "day", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[0-9]{8}$"},
                 "description": "WeChat's bill day, YYYYMMDD, China time (UTC+8)"}
    paths["/admin/reconciliations/{day}"] = {"get": {
        "tags": ["admin"], "operationId": "adminReconciliation", "security": _admin_security(),
        "summary": "one reconciled bill day: both sides' counts and sums, and its breaks",
        "parameters": [day_param, {"name": "m", "in": "query", "required": False, "schema": {"type": "string"},
                                   "description": "a signed message to show"}],
        "responses": _admin_responses(
            {"200": {"description": "the page", "content": {"text/html": {"schema": {"type": "string"}}}}},
            codes404=["reconciliation_not_found"]),
    }}
    paths["/admin/reconciliations/{day}.json"] = {"get": {
        "tags": ["admin"], "operationId": "adminReconciliationJson", "security": _admin_security(),
        "summary": "one reconciled bill day as JSON, with every break (open first)",
        "parameters": [day_param],
        "responses": _admin_responses(
            {"200": _json("date, state, openBreaks, breaksFound, runs, lastRunAt, wechat, ours, breaks",
                          {"type": "object",
                           "required": ["date", "state", "openBreaks", "breaksFound", "wechat", "ours", "breaks"],
                           "properties": {"date": {"type": "string", "pattern": "^[0-9]{8}$"},
                                          "state": {"type": "string", "enum": ["balanced", "breaks", "resolved"]},
                                          "openBreaks": {"type": "integer"}, "breaksFound": {"type": "integer"},
                                          "wechat": {"type": "object"}, "ours": {"type": "object"},
                                          "breaks": {"type": "array", "items": {"type": "object"}}}})},
            codes404=["reconciliation_not_found"]),
    }}
    paths["/admin/reconciliations/{day}/breaks/{breakId}/resolve"] = {"post": {
        "tags": ["admin"], "operationId": "adminResolveBreak", "security": _admin_security(),
        "summary": "close one open break of the day with a note (required)",
        "description": ("A browser is redirected back to the day's page with a message, also when the "
                        "action is refused; an API client gets a JSON error."),
        "parameters": [day_param, {"name": "breakId", "in": "path", "required": True,
                                   "schema": {"type": "integer"}, "description": "the break's id"}],
        "requestBody": _form_body({
            "name": {"type": "string", "maxLength": 40, "description": "who, for the record"},
            "note": {"type": "string", "maxLength": 1000, "description": "what was found, what was done"},
            "csrf_token": {"type": "string", "description": "required with the login cookie"},
        }, required=["note"]),
        "responses": _admin_responses(
            {"303": {"description": "done (or, for a browser, refused): to the day's page",
                     "headers": {"Location": {"schema": {"type": "string"}}}}},
            codes400=["missing_note", "note_too_long"],
            codes404=["reconciliation_not_found", "break_not_found"], codes409=["break_already_resolved"]),
    }}
    actions = {
        "reconcile": ("ask the operator again about an unknown or processing recharge (with a status "
                      "query: UNITEL_STATUS_PATH is not none)", ["not_reconcilable"], False),
        "mark-delivered": ("without a status query: mark an unclear top-up delivered, once Unitel said it "
                           "was done (a note is required; nothing is sent)", ["not_unconfirmed"], True),
        "fail-refund": ("without a status query: mark an unclear top-up failed and refund it, once Unitel "
                        "said it was not done (a note is required; nothing is sent)", ["not_unconfirmed"], True),
        "refund": ("refund a paid order whose recharge failed", ["not_refundable"], False),
        "resolve": ("mark an anomaly resolved (a note is required)", ["nothing_to_resolve", "anomaly_changed"], True),
        "give-up": ("fail and refund a paid order the operator lost every allowed submit of "
                    "(operator_lost_request), unless the operator now knows it (a note is required)",
                    ["not_given_up"], True),
    }
    for action, (summary, conflicts, note_required) in actions.items():
        note = {"type": "string", "maxLength": admin_api.NOTE_MAX, "description": "why (at most 1000 characters as sent)"}
        if note_required:  # something besides the whitespace removed around it
            note.update(minLength=1, pattern=f"[^{_TRIM[1:-1]}]",
                        description="why: required, and not only whitespace (at most 1000 characters as sent)")
        form = {
            "name": NAME_FIELD,
            "note": note,
            "csrf_token": {"type": "string", "description": "required with the login cookie"},
        }
        if action == "resolve":
            form["reason"] = {"type": "string", "description": "the anomaly reason the person saw"}
        paths[f"/admin/orders/{{orderNumber}}/{action}"] = {"post": {
            "tags": ["admin"], "operationId": "admin" + action.title().replace("-", ""), "security": _admin_security(),
            "summary": summary,
            "description": ("A browser is redirected back to the order's page with a message, also "
                            "when the action is refused; an API client gets a JSON error."),
            "parameters": [admin_order_param],
            "requestBody": _form_body(form, required=["note"] if note_required else ()),
            "responses": _admin_responses(
                {"303": {"description": "done (or, for a browser, refused): to the order's page",
                         "headers": {"Location": {"schema": {"type": "string"}}}}},
                codes400=(["missing_note"] if note_required else []) + ["note_too_long"],
                codes404=True, codes409=conflicts),
        }}

    paths.update(_catalogue_paths())
    paths["/metrics"] = {"get": {
        "tags": ["meta"], "operationId": "metrics", "security": [{"metricsBearer": []}],
        "summary": "Prometheus metrics (text format), summed over every gunicorn worker",
        "description": ("Counters and histograms of the workers (elife_orders_created_total, "
                        "elife_callbacks_total{decision}, elife_operator_requests_total{kind,outcome}, "
                        "elife_operator_request_seconds, elife_recharge_seconds, elife_refunds_total{outcome}, "
                        "elife_http_requests_total{endpoint,status}, elife_breaker_open); the sweep's last "
                        "run (elife_sweep_last_run_*); and, read from the database at the scrape, "
                        "elife_orders_pending_compensation and its _oldest_seconds (the seed's query 4)."),
        "responses": {
            "200": {"description": "the metrics",
                    "content": {"text/plain": {"schema": {"type": "string"}}}},
            "401": _error("no Bearer token", ["missing_token"],
                          {"WWW-Authenticate": {"schema": {"type": "string"}}}),
            "403": _error("not the metrics token", ["forbidden"]),
        },
    }}

    # The body limit is checked before routing reaches a view: any request declaring a
    # larger body is refused, whatever its path and method. Every request may carry an
    # X-Request-Id, and every answer carries one. gunicorn refuses an overlong request
    # line or header section before the app sees the request.
    for path, item in paths.items():
        for op in item.values():
            op["responses"].setdefault("413", _error(
                f"the body is larger than {limit} bytes (refused before it is read)", ["body_too_large"],
                html=path.startswith("/admin")))
            op.setdefault("parameters", []).append(REQUEST_ID_PARAM)
            for resp in op["responses"].values():
                resp.setdefault("headers", {})["X-Request-Id"] = REQUEST_ID_HEADER
            op["responses"].update(GUNICORN_ERRORS)

    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "eLife backend",
            "version": API_VERSION,
            "description": (
                "Mobile top-ups for Mongolian numbers, paid with WeChat Pay. JSON bodies use "
                'camelCase; every error is {"error": {"code", "message"}} with a stable snake_case '
                "code (the payment callback answers WeChat in WeChat's own shape). Any request "
                f"declaring a body over {limit} bytes is a 413 body_too_large before it is read; an "
                "unknown path is a 404 not_found, a known path with another method a 405 "
                "method_not_allowed with Allow. The one answer that is not JSON comes from gunicorn, "
                "in front of the app: a request line over 4094 bytes is its 414, more than 100 "
                "headers or one over 8190 bytes its 431, each an HTML page. Customers authenticate with the token of "
                "POST /auth/login" + (", or behind WeChat Cloud Hosting with X-WX-OPENID"
                                      if settings.TRUST_WX_HEADERS else "") + "."),
        },
        "tags": [
            {"name": "customer", "description": "the mini-program"},
            {"name": "wechat", "description": "called by WeChat Pay"},
            {"name": "admin", "description": "the operator on duty; HTML for browsers, JSON for API clients"},
            {"name": "meta", "description": "probes and this description"},
        ],
        "paths": paths,
        "components": {
            "schemas": schemas(catalogue),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer",
                               "description": "the token of POST /auth/login"},
                "wxOpenid": {"type": "apiKey", "in": "header", "name": "X-WX-OPENID",
                             "description": "set by WeChat Cloud Hosting; believed only with TRUST_WX_HEADERS, "
                                            "together with the platform's X-WX-SOURCE, and with X-WX-ENV equal "
                                            "to WECHAT_ENV_ID when that is sent (at most 64 characters)"},
                "adminBearer": {"type": "http", "scheme": "bearer", "description": "ADMIN_TOKEN"},
                "metricsBearer": {"type": "http", "scheme": "bearer",
                                  "description": "METRICS_TOKEN (ADMIN_TOKEN when that is unset)"},
                "adminCookie": {"type": "apiKey", "in": "cookie", "name": "elife_admin",
                                "description": "set by POST /admin/login; forms then need csrf_token"},
            },
        },
    }
