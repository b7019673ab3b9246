"""The exchange rate and the catalogue, as the person on duty changes them: /admin/catalogue,
/admin/rate, /admin/products... (api/admin_catalogue.py)."""
from ...shop import catalog, phones, product_admin
from ...shop.rates import MAX_MOVE
from .admin import _admin_responses, _admin_security
from .parts import _anchored, _error, _form_body, _json


def paths(settings):
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
         "schema": {"type": "string", "pattern": _anchored(catalog.PRODUCT_CODE)}},
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
             "code": {"type": "string", "pattern": _anchored(catalog.PRODUCT_CODE)},
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
