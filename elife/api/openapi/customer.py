"""What the mini-program calls: the login (api/auth.py), the products and the orders
(api/orders.py), and the subscribe messages' consents (api/notifications.py)."""
from .. import orders as orders_api
from .parts import (BODY_ERRORS, CUSTOMER_401, FIELD_ERRORS, _anchored, _common, _customer_security, _error,
                    _json, _json_body, _order_number_param, _query, _retry_after)


def paths(settings):
    limit = settings.MAX_BODY_BYTES
    order_number_param = _order_number_param()
    return {
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
        "/notifications/consent": {"post": {
            "tags": ["customer"], "operationId": "postConsent", "security": _customer_security(settings),
            "summary": "what the customer chose in wx.requestSubscribeMessage: each accept is one message allowed",
            "description": ("Each accept adds one credit for (customer, template), spent when WeChat accepts a "
                            "message of that template; reject, ban and filter are recorded and add nothing. "
                            "All or nothing: one unknown template id or choice refuses the whole post."),
            "requestBody": _json_body("#/components/schemas/ConsentRequest", "the choices"),
            "responses": {
                "200": _json("recorded: the customer's consents now", {"$ref": "#/components/schemas/Consents"}),
                "400": _error("the body, a choice or a template id is not acceptable",
                              BODY_ERRORS + ["missing_field", "invalid_consent", "unknown_template"]),
                "401": _error("not logged in", CUSTOMER_401),
                **_common(limit, body=True),
            },
        }},
        "/notifications": {"get": {
            "tags": ["customer"], "operationId": "getConsents", "security": _customer_security(settings),
            "summary": "the messages we send (one template each) and how many the customer has allowed",
            "responses": {
                "200": _json("one entry per configured kind", {"$ref": "#/components/schemas/Consents"}),
                "401": _error("not logged in", CUSTOMER_401),
                **_common(limit),
            },
        }},
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
    }
