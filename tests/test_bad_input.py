"""Bad input on every customer endpoint: a 4xx JSON error with a stable `code`, never a
500 or an HTML page, and nothing changed in the database.

Endpoints: POST /auth/login, GET /products, POST /orders, GET /orders,
GET /orders/<orderNumber>. Every test counts the rows of every table before and after.
"""
import json

import pytest

from conftest import SEED_ORDER, clean_database, login, row_counts
from elife import create_app
from elife.extensions import db
from elife.ops.seed import seed

FIELDS = ("phoneNumber", "productOperator", "rechargeType", "productCode")


# One app, one customer and one order for the whole module (bad input changes nothing, and
# each test checks that it did not): several hundred cases stay fast on both databases.

@pytest.fixture(scope="module")
def app(migrated, settings_env, sandbox_server):
    app = create_app(dict(settings_env))
    with app.app_context():
        clean_database()
        seed()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(scope="module")
def client(app):
    return app.test_client()


@pytest.fixture(scope="module")
def customer(client):
    return login(client, "bad-input-customer")


@pytest.fixture(scope="module")
def order(client, customer):
    r = client.post("/orders", json=SEED_ORDER, headers=customer)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


# Rate-limit counters (written for every request, rejected ones too: that is their job)
# are bookkeeping, not stored data; every other table must stay as it was.
BOOKKEEPING = {"rate_limits"}


def counts(app):
    with app.app_context():
        return {t: n for t, n in row_counts().items() if t not in BOOKKEEPING}


def assert_rejected(r, status, codes):
    """A JSON error of this status with one of these codes, and nothing else."""
    codes = (codes,) if isinstance(codes, str) else codes
    assert r.status_code == status, (r.status_code, r.data[:300])
    assert r.mimetype == "application/json", r.data[:300]
    assert b"<html" not in r.data.lower() and b"Traceback" not in r.data
    body = r.get_json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] in codes, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]["code"]


@pytest.fixture
def unchanged(app, customer, order):
    """Row counts (with one user and one order already there) must be the same afterwards."""
    before = counts(app)
    yield
    assert counts(app) == before


# -- bodies that are not a JSON object: both POST endpoints ------------------------------------

BAD_BODIES = [
    (b"", "missing_body"),
    (b"   \n\t ", "missing_body"),
    (b"{not json", "malformed_json"),
    (b'{"code": "abc",}', "malformed_json"),
    (b"{'code': 'abc'}", "malformed_json"),
    (b'{"code": "abc"', "malformed_json"),
    (b"\xff\xfe\x00", "malformed_json"),
    (b'{"code": "\xff"}', "malformed_json"),                 # not UTF-8
    (b"code=abc&phoneNumber=88888888", "malformed_json"),   # a form
    (b"<xml/>", "malformed_json"),
    (b"[" * 5000, "malformed_json"),                       # unfinished
    (b"[" * 30000 + b"]" * 30000, "malformed_json"),      # nested deeper than any parser goes
    (b'{"a":' * 10000 + b"1" + b"}" * 10000, "malformed_json"),
    (b'["88888888", "UNITEL", "VOICE", "5000"]', "body_not_object"),
    (b"[]", "body_not_object"),
    (b'[{"code": "abc"}]', "body_not_object"),
    (b'"a string"', "body_not_object"),
    (b"42", "body_not_object"),
    (b"-1.5e300", "body_not_object"),
    (b"true", "body_not_object"),
    (b"null", ("body_not_object", "malformed_json")),
]


@pytest.mark.parametrize("path", ["/auth/login", "/orders"])
@pytest.mark.parametrize("body, code", BAD_BODIES, ids=[repr(b[:24]) for b, _ in BAD_BODIES])
def test_a_body_that_is_not_a_json_object(client, customer, unchanged, path, body, code):
    r = client.post(path, data=body, content_type="application/json", headers=customer)
    assert_rejected(r, 400, code)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_non_json_content_type_with_a_bad_body(client, customer, unchanged, content_type):
    r = client.post("/orders", data=b"phoneNumber=88888888", content_type=content_type, headers=customer)
    assert_rejected(r, 400, "malformed_json")


def test_a_body_over_the_size_limit(client, customer, unchanged):
    big = json.dumps({**SEED_ORDER, "pad": "x" * 70_000})
    assert_rejected(client.post("/orders", data=big, content_type="application/json", headers=customer),
                    413, "body_too_large")
    assert_rejected(client.post("/auth/login", data=json.dumps({"code": "x" * 70_000}),
                                content_type="application/json"), 413, "body_too_large")


# -- POST /auth/login: the code -----------------------------------------------------------------

WRONG_TYPES = [123, 0, -1, 12.5, True, False, [], ["abc"], {}, {"code": "abc"}]


@pytest.mark.parametrize("value", WRONG_TYPES, ids=repr)
def test_login_code_of_the_wrong_type(client, unchanged, value):
    assert_rejected(client.post("/auth/login", json={"code": value}), 400, "invalid_field")


@pytest.mark.parametrize("body", [{}, {"code": None}, {"code": ""}, {"code": " \t "}, {"Code": "abc"},
                                  {"js_code": "abc"}])
def test_login_code_missing(client, unchanged, body):
    assert_rejected(client.post("/auth/login", json=body), 400, "missing_field")


@pytest.mark.parametrize("code", [
    "x" * 10_000, "x" * 129, "登" * 129,
    "abc\x00def", "abc\ndef", "abc\r\ndef", "a\tb", "\x1b[31mred", "abc\x7f", "a\u200bb",  # zero width
    "a\u202eb",     # right-to-left override
    "a\u2028b",     # line separator
    "a\ud800b",     # a lone surrogate
    "invalid\u767b\u5f55", "caf\u00e9", "a b",  # not printable ASCII: no wx.login code looks so
])
def test_login_code_too_long_or_with_control_characters(client, unchanged, code):
    assert_rejected(client.post("/auth/login", json={"code": code}), 400, "invalid_field")


@pytest.mark.parametrize("code", ["invalid", "invalid'OR'1'='1", "invalid\t"])
def test_login_code_wechat_refuses(client, unchanged, code):
    assert_rejected(client.post("/auth/login", json={"code": code}), 401, "invalid_code")


# -- GET /products: the filters -----------------------------------------------------------------

@pytest.mark.parametrize("name", ["operator", "rechargeType"])
@pytest.mark.parametrize("value", [
    "unitel", "Unitel", "UNITEL' OR '1'='1", "UNITEL;DROP TABLE products", "../../etc/passwd",
    "\x00", "UNITEL\x00", "X" * 10_000, "X" * 17, "УНИТЕЛ", "ＵＮＩＴＥＬ", "UNITEL ", " VOICE", "1", "%",
    "UNI-TEL", "UNITEL\n",
])
def test_products_bad_filter(client, unchanged, name, value):
    assert_rejected(client.get("/products", query_string={name: value}), 400, "invalid_filter")


# -- POST /orders: the fields -------------------------------------------------------------------

@pytest.mark.parametrize("field", FIELDS)
def test_order_field_missing(client, customer, unchanged, field):
    body = {k: v for k, v in SEED_ORDER.items() if k != field}
    assert_rejected(client.post("/orders", json=body, headers=customer), 400, "missing_field")


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("value", [None, "", "   "], ids=repr)
def test_order_field_null_or_empty(client, customer, unchanged, field, value):
    r = client.post("/orders", json={**SEED_ORDER, field: value}, headers=customer)
    assert_rejected(r, 400, "missing_field")


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("value", [88888888, 5000, 0, 12.5, True, False, [], ["88888888"], {},
                                   {"value": "UNITEL"}], ids=repr)
def test_order_field_of_the_wrong_type(client, customer, unchanged, field, value):
    r = client.post("/orders", json={**SEED_ORDER, field: value}, headers=customer)
    assert_rejected(r, 400, "invalid_field")


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("value", ["8" * 10_000, "U" * 10_000, "\u767b" * 10_000], ids=["digits", "letters", "cjk"])
def test_order_field_huge(client, customer, unchanged, field, value):
    r = client.post("/orders", json={**SEED_ORDER, field: value}, headers=customer)
    assert_rejected(r, 400, "invalid_field")


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("junk", ["\x00", "\n", "\r\n", "\t", "\x1b[0m", "\x7f", "\u200b", "\u202e",
                                  "\u2028", "\ud800", "\x08"], ids=repr)
def test_order_field_with_control_characters(client, customer, unchanged, field, junk):
    value = SEED_ORDER[field][:2] + junk + SEED_ORDER[field][2:]
    r = client.post("/orders", json={**SEED_ORDER, field: value}, headers=customer)
    assert_rejected(r, 400, "invalid_field")


@pytest.mark.parametrize("field, value, code", [
    ("productOperator", "УНИТЕЛ", "invalid_field"),
    ("productOperator", "ＵＮＩＴＥＬ", "invalid_field"),
    ("productOperator", "unitel", "invalid_field"),
    ("productOperator", "UNITEL'--", "invalid_field"),
    ("productOperator", "UNITEL;DROP TABLE orders", "invalid_field"),
    ("rechargeType", "VOİCE", "invalid_field"),
    ("rechargeType", "voice", "invalid_field"),
    ("rechargeType", "VOICE' OR '1'='1", "invalid_field"),
    ("productCode", "5000₮", "invalid_field"),
    ("productCode", "５０００", "invalid_field"),
    ("productCode", "5000' OR '1'='1", "invalid_field"),
    ("productCode", "../../etc/passwd", "invalid_field"),
    ("productCode", "5000%00", "invalid_field"),
    ("productCode", "😀", "invalid_field"),
    ("productCode", "x" * 33, "invalid_field"),
    ("phoneNumber", "８８８８８８８８", "invalid_phone_number"),      # full-width digits
    ("phoneNumber", "٨٨٨٨٨٨٨٨", "invalid_phone_number"),              # Arabic-Indic digits
    ("phoneNumber", "88888888😀", "invalid_phone_number"),
    ("phoneNumber", "88888888' OR '1'='1", "invalid_phone_number"),
    ("phoneNumber", "8888888", "invalid_phone_number"),
    ("phoneNumber", "888888888", "invalid_phone_number"),
    ("phoneNumber", "+86 138 0013 8000", "invalid_phone_number"),
    ("phoneNumber", "abcdefgh", "invalid_phone_number"),
    ("phoneNumber", "8" * 33, "invalid_field"),
])
def test_order_field_unicode_sql_and_format(client, customer, unchanged, field, value, code):
    r = client.post("/orders", json={**SEED_ORDER, field: value}, headers=customer)
    assert_rejected(r, 400, code)


@pytest.mark.parametrize("extra", [
    {"totalFee": 1}, {"totalFee": 1050}, {"totalFee": "1"}, {"totalFee": None}, {"totalFee": -1},
    {"productPriceRmb": "0.01"}, {"productPriceTg": 1}, {"priceRmb": "0.01"}, {"priceTg": 1},
    {"paymentStatus": "paid"}, {"rechargeStatus": "success"}, {"totalFee": 1, "paymentStatus": "paid"},
])
def test_a_client_sent_price_or_state_is_refused(client, customer, unchanged, extra):
    r = client.post("/orders", json={**SEED_ORDER, **extra}, headers=customer)
    assert_rejected(r, 400, "price_not_accepted")


@pytest.mark.parametrize("change, status, code", [
    ({"productOperator": "MOBICOM"}, 400, "unsupported_operator"),
    ({"productOperator": "SKYTEL"}, 400, "unsupported_operator"),
    ({"productOperator": "FOO"}, 400, "unsupported_operator"),
    ({"rechargeType": "SMS"}, 400, "invalid_recharge_type"),
    ({"productCode": "9999"}, 400, "unknown_product"),
    ({"productCode": "DATA1GB"}, 400, "unknown_product"),                    # a DATA code as VOICE
    ({"rechargeType": "DATA", "productCode": "5000"}, 400, "unknown_product"),
    ({"productCode": "5000 "}, 201, None),                                   # trimmed: fine (below)
    ({"phoneNumber": "99112233"}, 400, "phone_operator_mismatch"),          # Mobicom
    ({"phoneNumber": "+976 9411 2233"}, 400, "phone_operator_mismatch"),
    ({"phoneNumber": "91112233"}, 400, "phone_operator_mismatch"),          # Skytel
    ({"phoneNumber": "70112233"}, 400, "phone_operator_mismatch"),          # nobody's
])
def test_unknown_operator_product_or_another_operators_number(app, client, customer, change, status, code):
    before = counts(app)
    r = client.post("/orders", json={**SEED_ORDER, **change}, headers=customer)
    if status == 201:                   # the control: surrounding spaces are not an error
        assert r.status_code == 201 and r.get_json()["productCode"] == "5000"
        return
    assert_rejected(r, status, code)
    assert counts(app) == before


@pytest.mark.parametrize("key", ["", " ", "x" * 65, "x" * 10_000, "a b", "key;drop", "k'ey", "ключ", "k\x7f"],
                         ids=repr)
def test_a_bad_idempotency_key(client, customer, unchanged, key):
    try:
        key.encode("latin-1")
    except UnicodeEncodeError:
        key = key.encode("utf-8").decode("latin-1")  # as the bytes arrive on the wire
    r = client.post("/orders", json=SEED_ORDER, headers={**customer, "Idempotency-Key": key})
    assert_rejected(r, 400, "invalid_idempotency_key")


def test_bad_input_on_a_replayed_key_is_still_refused(client, customer, app):
    """A good create with a key, then junk with the same key: the junk is an error, not
    the first order (validation comes before the key)."""
    h = {**customer, "Idempotency-Key": "replay-then-junk"}
    assert client.post("/orders", json=SEED_ORDER, headers=h).status_code == 201
    before = counts(app)
    assert_rejected(client.post("/orders", json={**SEED_ORDER, "totalFee": 1}, headers=h), 400,
                    "price_not_accepted")
    assert_rejected(client.post("/orders", json={**SEED_ORDER, "phoneNumber": "99112233"}, headers=h), 400,
                    "phone_operator_mismatch")
    assert counts(app) == before


# -- GET /orders: the query ---------------------------------------------------------------------

@pytest.mark.parametrize("name", ["limit", "cursor"])
@pytest.mark.parametrize("value", [
    "0", "-1", "abc", "1.5", "1e3", " 1", "1 ", "+1", "0x10", "1' OR '1'='1", "1;DROP TABLE orders",
    "9" * 20, "9" * 10_000, "\x00", "1\x00", "²", "５", "٣", "１０", "NaN", "Infinity", "[]",
])
def test_list_bad_query(client, customer, unchanged, name, value):
    r = client.get("/orders", query_string={name: value}, headers=customer)
    assert_rejected(r, 400, "invalid_parameter")


@pytest.mark.parametrize("value", ["101", "1000"])
def test_list_limit_over_100(client, customer, unchanged, value):
    assert_rejected(client.get("/orders", query_string={"limit": value}, headers=customer), 400,
                    "invalid_parameter")


@pytest.mark.parametrize("query", ["limit=1&limit=abc", "limit=1&limit=1", "cursor=5&cursor=", "limit=&limit="])
def test_list_repeated_parameters_are_400(client, customer, unchanged, query):
    """Not the first of two that may disagree: the one the client meant is not ours to guess."""
    assert_rejected(client.get(f"/orders?{query}", headers=customer), 400, "invalid_parameter")


@pytest.mark.parametrize("query", ["limit=", "cursor=", "limit=&cursor="])
def test_list_empty_parameters_are_the_default(client, customer, unchanged, query):
    r = client.get(f"/orders?{query}", headers=customer)
    assert r.status_code == 200 and r.get_json()["nextCursor"] is None


def test_products_repeated_filters_are_400(client, unchanged):
    assert_rejected(client.get("/products?operator=UNITEL&operator=MOBICOM"), 400, "invalid_parameter")


# -- GET /orders/<orderNumber>: SQL and path fragments ------------------------------------------

PATHS = [  # (URL path after /orders/, expected code)
    ("ORD1'%20OR%20'1'%3D'1", "order_not_found"),
    ("ORD1' OR '1'='1", "order_not_found"),
    ("ORD20240101000000%27%20UNION%20SELECT%20*%20FROM%20users--", "order_not_found"),
    ("ORD1%3B%20DROP%20TABLE%20orders", "order_not_found"),
    ("%25", "order_not_found"),
    ("ORD%25", "order_not_found"),
    ("%00", "order_not_found"),
    ("ORD12345678%00", "order_not_found"),
    ("ORD12345678%0A", "order_not_found"),
    ("%ff", "order_not_found"),
    ("ORD%E2%80%AE12345678", "order_not_found"),
    ("ORD%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%95%EF%BC%96", "order_not_found"),  # full-width digits
    ("ord12345678", "order_not_found"),
    ("ORD", "order_not_found"),
    ("ORD" + "9" * 40, "order_not_found"),
    ("ORD" + "9" * 10_000, "order_not_found"),
    ("X" * 10_000, "order_not_found"),
    ("..", "order_not_found"),
    ("..%2F..%2Fetc%2Fpasswd", ("not_found", "order_not_found")),
    ("../../etc/passwd", ("not_found", "order_not_found")),
    ("%2e%2e%2f%2e%2e%2fetc%2fpasswd", ("not_found", "order_not_found")),
    ("..%5C..%5Cwindows%5Cwin.ini", "order_not_found"),
    ("ORD12345678/../ORD12345678", ("not_found", "order_not_found")),
]


@pytest.mark.parametrize("path, code", PATHS, ids=[p[:40] for p, _ in PATHS])
def test_order_number_fragments_in_the_url(client, customer, unchanged, path, code):
    r = client.get(f"/orders/{path}", headers=customer)
    assert_rejected(r, 404, code)


def test_an_order_number_with_a_sql_tail_does_not_find_the_order(client, customer, order, unchanged):
    n = order["orderNumber"]
    assert client.get(f"/orders/{n}", headers=customer).status_code == 200
    for tail in ["'%20OR%20'1'%3D'1", "%25", "%00", "%20", "--", "'--", "%0A", "/"]:
        r = client.get(f"/orders/{n}{tail}", headers=customer)
        assert_rejected(r, 404, ("order_not_found", "not_found"))
    assert_rejected(client.get(f"/orders/{n[:-1]}%25", headers=customer), 404, "order_not_found")
    assert_rejected(client.get(f"/orders/{n.lower()}", headers=customer), 404, "order_not_found")


# -- authentication on every customer endpoint, with junk -----------------------------------------

JUNK_AUTH = [
    "Bearer " + "x" * 10_000,
    "Bearer x.y.z",
    "Bearer ' OR '1'='1",
    "Bearer ../../etc/passwd",
    "Bearer \u00e9\u00e8",
    "Bearer eyJ1aWQiOjF9",
    "Bearer null",
]


@pytest.mark.parametrize("method, path", [("post", "/orders"), ("get", "/orders"),
                                          ("get", "/orders/ORD20240101000000123456")])
@pytest.mark.parametrize("auth", JUNK_AUTH, ids=[a[:20] for a in JUNK_AUTH])
def test_junk_tokens(client, unchanged, method, path, auth):
    r = getattr(client, method)(path, json=SEED_ORDER if method == "post" else None,
                                headers={"Authorization": auth})
    assert_rejected(r, 401, "invalid_token")


@pytest.mark.parametrize("method, path", [("post", "/orders"), ("get", "/orders"),
                                          ("get", "/orders/ORD20240101000000123456")])
def test_bad_input_without_a_token_is_401_first(client, unchanged, method, path):
    """Unauthenticated junk learns nothing about validation: it is a 401."""
    r = getattr(client, method)(path, data=b"{not json", content_type="application/json")
    assert_rejected(r, 401, "missing_token")


# -- and never a 500 for methods and paths nearby ---------------------------------------------

@pytest.mark.parametrize("method, path, status, code", [
    ("put", "/orders", 405, "method_not_allowed"),
    ("delete", "/orders/ORD20240101000000123456", 405, "method_not_allowed"),
    ("get", "/auth/login", 405, "method_not_allowed"),
    ("post", "/products", 405, "method_not_allowed"),
    ("get", "/orders/", 404, "not_found"),
    ("get", "/auth/login/x", 404, "not_found"),
])
def test_wrong_methods_and_paths(client, customer, unchanged, method, path, status, code):
    assert_rejected(getattr(client, method)(path, headers=customer), status, code)


def test_many_bad_requests_then_a_good_one(app, client):
    """After all of it the service still works as before for a real customer."""
    h = login(client, "after-the-storm")
    for body in (b"{", b"[]", b'{"phoneNumber": 1}'):
        client.post("/orders", data=body, content_type="application/json", headers=h)
    r = client.post("/orders", json=SEED_ORDER, headers=h)
    assert r.status_code == 201 and r.get_json()["totalFee"] == 1050
