"""/payment/*: the customer creating the WeChat Pay trade, and WeChat's payment and refund
notices (api/payment.py)."""
from .parts import (BODY_ERRORS, CUSTOMER_401, FIELD_ERRORS, _common, _customer_security, _error, _json,
                    _json_body, _retry_after)


def _wx_source(settings):
    """The header Cloud Hosting sets on the notices it delivers (required with REQUIRE_WX_SOURCE)."""
    return {
        "name": "X-WX-SOURCE", "in": "header", "required": bool(settings.REQUIRE_WX_SOURCE),
        "description": "set by WeChat Cloud Hosting" + ("; required (REQUIRE_WX_SOURCE)"
                                                        if settings.REQUIRE_WX_SOURCE else ""),
        "schema": {"type": "string"},
    }


def _not_from_platform(settings):
    return ({"403": _error("X-WX-SOURCE is missing: not from Cloud Hosting (recorded)", ["not_from_platform"])}
            if settings.REQUIRE_WX_SOURCE else {})


def paths(settings):
    limit = settings.MAX_BODY_BYTES
    return {
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
            }, _wx_source(settings)],
            "requestBody": _json_body("#/components/schemas/WeChatNotice", "the notice (any bytes are recorded)"),
            "responses": {
                "200": _json("recorded", {"$ref": "#/components/schemas/WeChatReply"}),
                "400": _error("the body is not JSON, or not a WeChat Pay notice (recorded when the order is ours)",
                              ["malformed_json", "not_a_notice"]),
                **_not_from_platform(settings),
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
            }, _wx_source(settings)],
            "requestBody": _json_body("#/components/schemas/WeChatRefundNotice",
                                      "the notice (any bytes are recorded)"),
            "responses": {
                "200": _json("recorded", {"$ref": "#/components/schemas/WeChatReply"}),
                "400": _error("the body is not JSON, or not a WeChat Pay notice (recorded all the same)",
                              ["malformed_json", "not_a_notice"]),
                **_not_from_platform(settings),
                **_common(limit, body=True),
            },
        }},
    }
