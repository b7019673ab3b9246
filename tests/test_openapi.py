"""GET /openapi.json: the service describes itself truthfully.

Its paths and methods are exactly the app's routes (none missing, none invented), every
reference resolves, every path parameter is declared, and what it says a valid request
looks like is accepted. (test_fuzz.py checks the rest: every status and error code the
service answers under generated input is one this description lists, and every JSON
success body matches its schema.)
"""
import re

import pytest

from conftest import SEED_ORDER
from openapi_check import app_operations, errors, operation, resolve, spec_operations

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
NOT_JSON = {"414", "431"}  # gunicorn's own pages, for requests the app never sees


@pytest.fixture
def spec(client):
    r = client.get("/openapi.json")
    assert r.status_code == 200
    assert r.mimetype == "application/json"
    return r.get_json()


def test_served_as_openapi_3(spec):
    assert re.fullmatch(r"3\.0\.\d+", spec["openapi"])
    assert spec["info"]["title"] and spec["info"]["version"]
    assert spec["paths"]


def test_paths_and_methods_are_exactly_the_apps_routes(app, spec):
    served, described = app_operations(app), spec_operations(spec)
    assert served - described == set(), "routes the description is missing"
    assert described - served == set(), "operations the description invents"


def _walk(node, at="#"):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _walk(v, f"{at}/{k}")
        if "$ref" in node:
            yield at, node["$ref"]
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{at}/{i}")


def test_every_reference_resolves(spec):
    refs = list(_walk(spec))
    assert refs
    for at, ref in refs:
        assert resolve(spec, {"$ref": ref}) is not None, (at, ref)


def test_every_operation_is_complete(spec):
    ids = []
    for path, item in spec["paths"].items():
        in_path = set(re.findall(r"{([^}]+)}", path))
        for method, op in item.items():
            assert method in HTTP_METHODS, (path, method)
            ids.append(op["operationId"])
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == in_path, (path, method, "path parameters")
            assert all(p["required"] for p in op.get("parameters", []) if p["in"] == "path")
            assert op["responses"], (path, method)
            for status, resp in op["responses"].items():
                assert re.fullmatch(r"[1-5][0-9][0-9]", status), (path, method, status)
                assert resp["description"], (path, method, status)
                if status in NOT_JSON:
                    assert list(resp["content"]) == ["text/html"], (path, method, status)
                elif int(status) >= 400:
                    assert "application/json" in resp["content"], (path, method, status)
            for scheme in (s for req in op.get("security", []) for s in req):
                assert scheme in spec["components"]["securitySchemes"], (path, method, scheme)
    assert len(ids) == len(set(ids)), "operationIds must be unique"


def test_errors_are_described_in_the_one_error_shape(spec):
    shape = spec["components"]["schemas"]["Error"]
    sample = {"error": {"code": "missing_field", "message": "phoneNumber is required"}}
    assert errors(sample, shape, spec) == []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            for status, resp in op["responses"].items():
                if int(status) < 400 or path == "/health" or status in NOT_JSON:
                    continue
                schema = resp["content"]["application/json"]["schema"]
                codes = schema["properties"]["error"]["properties"]["code"]["enum"]
                assert codes, (path, method, status)
                for code in codes:
                    assert errors({"error": {"code": code, "message": "m"}}, schema, spec) == []
                    assert errors({"error": {"code": code, "message": "m"}}, shape, spec) == []


def test_the_described_limits_are_the_codes(spec):
    """Patterns and bounds come from the code's own constants."""
    from elife.api import common, orders
    from elife.shop import catalog
    from elife.api.openapi import build_spec, trimmed
    from elife.config import load_settings
    # Without the catalogue (the database), the fields' own patterns.
    plain = build_spec(load_settings(environ={}))
    body = plain["components"]["schemas"]["OrderRequest"]["properties"]
    assert re.search(body["productOperator"]["pattern"], "UNITEL")
    assert body["productCode"]["pattern"] == trimmed(catalog.PRODUCT_CODE)
    # With it (as served): which codes go with which type.
    branches = spec["components"]["schemas"]["OrderRequest"]["anyOf"]
    voice = next(b["properties"] for b in branches if re.search(b["properties"]["rechargeType"]["pattern"], "VOICE"))
    assert re.search(voice["productCode"]["pattern"], "5000") and not re.search(voice["productCode"]["pattern"],
                                                                                "DATA1GB")
    assert body["productCode"]["maxLength"] == 32 and body["phoneNumber"]["maxLength"] == 32
    get_order = operation(spec, "/orders/{orderNumber}", "GET")
    assert get_order["parameters"][0]["schema"]["pattern"] == f"^{common.ORDER_NUMBER.pattern}$"
    limit = next(p for p in operation(spec, "/orders", "GET")["parameters"] if p["name"] == "limit")
    assert limit["schema"]["maximum"] == orders.MAX_LIMIT
    key = operation(spec, "/orders", "POST")["parameters"][0]
    assert key["name"] == "Idempotency-Key" and key["schema"]["pattern"] == f"^{orders._KEY.pattern}$"


def test_a_request_built_from_the_description_is_accepted(client, spec):
    """The examples in the description make a working login, catalogue query and order."""
    login_body = spec["components"]["schemas"]["LoginRequest"]["properties"]
    r = client.post("/auth/login", json={"code": login_body["code"]["example"]})
    assert r.status_code == 200
    assert errors(r.get_json(), operation(spec, "/auth/login", "POST")["responses"]["200"]
                  ["content"]["application/json"]["schema"], spec) == []
    auth = {"Authorization": f"Bearer {r.get_json()['token']}"}

    params = {p["name"]: p["schema"]["example"] for p in operation(spec, "/products", "GET")["parameters"]
              if p["in"] == "query"}
    r = client.get("/products", query_string=params)
    assert r.status_code == 200 and r.get_json()["products"]
    assert errors(r.get_json(), {"$ref": "#/components/schemas/ProductList"}, spec) == []

    props = spec["components"]["schemas"]["OrderRequest"]["properties"]
    body = {name: props[name]["example"] for name in spec["components"]["schemas"]["OrderRequest"]["required"]}
    assert body == SEED_ORDER
    assert errors(body, {"$ref": "#/components/schemas/OrderRequest"}, spec) == []
    r = client.post("/orders", json=body, headers=auth)
    assert r.status_code == 201
    assert errors(r.get_json(), {"$ref": "#/components/schemas/Order"}, spec) == []


def test_client_set_prices_are_described_as_refused(client, customer, spec):
    schema = {"$ref": "#/components/schemas/OrderRequest"}
    body = {**SEED_ORDER, "totalFee": 1}
    assert errors(body, schema, spec), "the description must refuse a client-set price"
    r = client.post("/orders", json=body, headers=customer)
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "price_not_accepted"


def test_settings_shape_the_description(make_app, sandbox):
    plain = make_app().test_client().get("/openapi.json").get_json()
    assert {"wxOpenid": []} not in operation(plain, "/orders", "POST")["security"]
    assert "403" not in operation(plain, "/payment/callback/{orderNumber}", "POST")["responses"]
    behind_wx = make_app(TRUST_WX_HEADERS="true", REQUIRE_WX_SOURCE="true",
                         MAX_BODY_BYTES=1000).test_client().get("/openapi.json").get_json()
    assert {"wxOpenid": []} in operation(behind_wx, "/orders", "POST")["security"]
    assert "1000 bytes" in operation(behind_wx, "/orders", "POST")["responses"]["413"]["description"]
    callback = operation(behind_wx, "/payment/callback/{orderNumber}", "POST")
    assert callback["responses"]["403"]["content"]["application/json"]["schema"]["properties"]["error"][
        "properties"]["code"]["enum"] == ["not_from_platform"]
