"""Fuzzing every endpoint with generated input (hypothesis): what hand-written cases miss.

The in-process app on the real database (SQLite, or MariaDB with ELIFE_TEST_DATABASE_URL)
with the sandbox over HTTP. For every request, whatever its input:
- the status is below 500;
- the status is one GET /openapi.json describes for that operation (or 404/405 for a
  path or method the app does not route), and a JSON body matches the schema described
  for it -- so an error is {"error": {"code", "message"}} with one of the codes listed for
  that status; the callback's 200 is WeChat's {"errcode", "errmsg"}; /admin may answer a
  browser (Accept: text/html) with a page where the description says so;
- a rejected request (4xx) changes no stored row: every table's row count and the
  contents of its rows are compared before and after, except the tables such a request
  legitimately writes (rate_limits always; operator_price_lists, the cache of the
  operator's package list that a well-formed order asks for before the Idempotency-Key
  decides; payment_notices for the callback, which
  records every notice before judging it; users behind Cloud Hosting, where a customer's
  first request creates their user as a login would).

Examples are derandomized (the same inputs on every run) and bounded; set
ELIFE_FUZZ_EXAMPLES to run more per endpoint. `pytest -s` prints the figures:
`fuzz: N requests, K responses >= 500`.
"""
import hashlib
import json
import os
import urllib.parse
from collections import Counter, defaultdict

import pytest
import sqlalchemy as sa
from flask import request, request_started
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import SEED_ORDER, TABLES, login, order_row, row_counts
from elife.api import admin_session
from elife.api.common import SANE_REQUEST_ID
from elife.shop import phones
from elife.api.orders import CLIENT_PRICE_FIELDS
from elife.api.auth import _serializer as customer_token_serializer
from elife.extensions import db
from elife.ops.seed import PRODUCTS
from openapi_check import errors as schema_errors
from openapi_check import openapi_path, operation

TALLY = {"requests": 0, "5xx": 0}
STATUSES = defaultdict(Counter)  # "METHOD /path/{template}" -> Counter(status)


def fuzz(examples):
    return settings(
        max_examples=int(os.environ.get("ELIFE_FUZZ_EXAMPLES", "0")) or examples,
        deadline=None,
        derandomize=True,  # a fixed seed: the same inputs on every run, on both databases
        database=None,     # and no example database written into the tree
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                               HealthCheck.data_too_large, HealthCheck.filter_too_much,
                               HealthCheck.large_base_example],
    )


# -- checking one request --------------------------------------------------------------------

def snapshot(ignore):
    """conftest's tables but the ignored ones, each as (row count, checksum of every row): a
    rejected request may neither add nor delete a row (what row_counts() compares) nor
    change one. This runs twice per request, so on MariaDB the server sums the rows
    (CHECKSUM TABLE); SQLite is read row by row."""
    tables = [t for t in TABLES if t not in ignore]
    with db.engine.connect() as c:
        counts = c.execute(sa.text("SELECT " + ", ".join(f"(SELECT COUNT(*) FROM {t})" for t in tables))).one()
        if c.dialect.name == "mysql":
            sums = {name.rsplit(".", 1)[-1]: value
                    for name, value in c.execute(sa.text("CHECKSUM TABLE " + ", ".join(tables))).all()}
        else:
            sums = {t: hashlib.sha256(repr(c.execute(sa.text(f"SELECT * FROM {t} ORDER BY 1")).all()).encode())
                    .hexdigest()[:16] for t in tables}
    return {t: (n, sums[t]) for t, n in zip(tables, counts)}


class Fuzzer:
    """Sends one request through the test client and checks the properties above."""

    def __init__(self, app, client):
        self.app, self.client = app, client
        self.spec = client.get("/openapi.json").get_json()
        self.routed = None
        request_started.connect(self._on_request, app)

    def close(self):
        request_started.disconnect(self._on_request, self.app)

    def _on_request(self, sender, **_):
        self.routed = (request.url_rule, request.routing_exception)

    def send(self, method, path, *, ignore=(), **kw):
        ignore = {"rate_limits", "operator_price_lists", *ignore}
        with self.app.app_context():
            before = snapshot(ignore)
        self.routed = None
        r = self.client.open(path, method=method, **kw)
        TALLY["requests"] += 1
        rule = self.routed[0] if self.routed else None
        STATUSES[f"{method} {openapi_path(rule.rule) if rule else '(no route)'}"][r.status_code] += 1
        if r.status_code >= 500:
            TALLY["5xx"] += 1
        where = f"{method} {path[:200]!r} -> {r.status_code} {r.data[:400]!r}"
        assert r.status_code < 500, where
        sent, got = kw.get("headers", {}).get("X-Request-Id"), r.headers.get("X-Request-Id", "")
        assert SANE_REQUEST_ID.fullmatch(got), where
        assert got == sent or not (sent and SANE_REQUEST_ID.fullmatch(sent)), where
        self._check_described(r, method, where)
        if r.status_code >= 400:
            with self.app.app_context():
                after = snapshot(ignore)
                changed = {t: (before[t], after[t]) for t in before if before[t] != after[t]}
                assert not changed, f"a rejected request changed stored rows: {changed}; {where}; " \
                                    f"row counts now: {row_counts()}"
        return r

    def _check_described(self, r, method, where):
        assert b"Traceback" not in r.data, where
        rule = self.routed[0] if self.routed else None
        if rule is None:  # not routed: a JSON 404/405 (or 413 for a big body, refused first)
            assert r.status_code in (404, 405, 413), where
            if method != "HEAD":
                self._error_shape(r, where)
                assert r.get_json()["error"]["code"] in ("not_found", "method_not_allowed", "body_too_large"), where
            return
        if method == "OPTIONS":
            # Flask's automatic answer, unless a check that runs first (the body limit, the
            # admin login) refused the request as it refuses any method on this path.
            if r.status_code == 200:
                assert r.headers.get("Allow"), where
                return
            item = self.spec["paths"][openapi_path(rule.rule)]
            assert any(str(r.status_code) in op["responses"] for op in item.values()), where
            self._error_shape(r, where)
            return
        op = operation(self.spec, openapi_path(rule.rule), "GET" if method == "HEAD" else method)
        described = op["responses"].get(str(r.status_code))
        assert described is not None, f"status not in /openapi.json for this operation: {where}"
        if method == "HEAD" or not r.data or 300 <= r.status_code < 400:
            return  # no body, or Werkzeug's "Redirecting..." stub
        content = described.get("content", {})
        assert r.mimetype in content, f"content type {r.mimetype} not described: {where}"
        if r.mimetype == "application/json":
            body = r.get_json()
            if r.status_code >= 400:
                self._error_shape(r, where)
            problems = schema_errors(body, content["application/json"]["schema"], self.spec)
            assert not problems, f"{problems}: {where}"

    @staticmethod
    def _error_shape(r, where):
        assert r.mimetype == "application/json", where
        body = r.get_json()
        assert isinstance(body, dict) and set(body) == {"error"}, where
        err = body["error"]
        assert set(err) - {"details"} == {"code", "message"}, where  # details: as the schema says
        assert isinstance(err["code"], str) and err["code"].replace("_", "").isalnum(), where
        assert err["code"] == err["code"].lower(), where
        assert isinstance(err["message"], str) and err["message"], where


@pytest.fixture
def fz(app, client):
    f = Fuzzer(app, client)
    yield f
    f.close()


# -- strategies ------------------------------------------------------------------------------

ANY_CHAR = st.characters(exclude_categories=())  # every code point, lone surrogates too
CONTROL = st.characters(max_codepoint=0x1F) | st.sampled_from(
    ["\x7f", "\x85", "\u2028", "\u2029", "\u200b", "\u200e", "\ufeff", "\ud800", "\udfff"])
LATIN1 = st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f")  # what a header can carry


def texts(max_size=40, min_size=0):
    return st.text(ANY_CHAR, min_size=min_size, max_size=max_size)


def with_control(base, control=CONTROL):
    return st.builds(lambda a, c, b: a + c + b, base, control, base)


HUGE = st.builds(lambda s, n: s * n, st.text(ANY_CHAR, min_size=1, max_size=3),
                 st.sampled_from([33, 129, 1001, 20_000, 70_000]))
SCALARS = (st.none() | st.booleans() | st.integers() | st.integers(-2 ** 70, 2 ** 70) | st.floats()
           | texts(20))
JSON_ANY = st.recursive(SCALARS, lambda c: st.lists(c, max_size=3) | st.dictionaries(texts(8), c, max_size=3),
                        max_leaves=8)
# Strings that have broken parsers, loggers and databases before: generated text reaches
# them only rarely (a lone surrogate is 2,048 code points in 1.1 million).
TRICKY = st.sampled_from([
    "\ud800", "a\udfffb", "\x00", "a\nb", "\r\n", "\u2028", "\u202e", "\ufeff", "\U0001f4b0", "\U0010ffff",
    "'", '"', "\\", "%s", "%(x)s", "{}", "{0}", "' OR '1'='1", "--", "/*", "NULL", "null", "None", "NaN",
    "SUCCESS\n", " SUCCESS", "ＳＵＣＣＥＳＳ", "\u0130", "ß", "e\u0301", "<script>", "${x}", "\t" * 3,
])
BAD_VALUES = st.one_of(JSON_ANY, texts(60), with_control(texts(8)), HUGE, st.just(""), st.just("   "),
                       TRICKY, st.lists(TRICKY, min_size=1, max_size=2), st.dictionaries(TRICKY, TRICKY, max_size=2))
HEADER_TEXT = st.text(LATIN1, max_size=40)

# Bodies that are not what anyone meant to send, and JSON at the edges of the parser.
RAW_BODIES = st.one_of(
    st.binary(max_size=200),
    st.sampled_from([
        b"", b" ", b"\n", b"null", b"[]", b"{}", b"0", b'"x"', b"{\"code\":", b"\xff\xfe\xfd",
        b"\xef\xbb\xbf{}", "{\"code\":\"x\"}".encode("utf-16"), b"{\"a\":NaN,\"b\":-Infinity}",
        b"[" * 50_000 + b"]" * 50_000, b"{\"a\":" * 10_000 + b"1" + b"}" * 10_000,
        b"1" * 5000, b"{\"code\":" + b"9" * 5000 + b"}", b"{\"code\":\"\\ud800\"}",
        b"{\"code\":\"a\\u0000b\"}", b"{\"code\":1e999}", b"{\"code\":\"x\",\"code\":[1]}",
    ]),
    st.builds(lambda b, n: b * n, st.binary(min_size=1, max_size=4), st.sampled_from([17_000, 70_000])),
)
CONTENT_TYPES = st.sampled_from([None, "application/json", "application/json; charset=latin-1", "text/plain",
                                 "application/x-www-form-urlencoded", "multipart/form-data; boundary=zz",
                                 "multipart/form-data", "application/xml"]) | HEADER_TEXT


def encode(value, how):
    if how == "ascii":
        return json.dumps(value).encode()
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


@st.composite
def bodies(draw, shaped):
    """Mostly a JSON object from `shaped`; sometimes any JSON value or raw bytes."""
    kind = draw(st.integers(0, 9))
    if kind <= 6:
        return encode(draw(shaped), draw(st.sampled_from(["ascii", "raw"])))
    if kind <= 8:
        return encode(draw(JSON_ANY), "ascii")
    return draw(RAW_BODIES)


def mostly(good, bad, good_in_ten=7):
    """`good` most of the time (and when shrinking), else `bad`."""
    return st.integers(0, 9).flatmap(lambda i: good if i < good_in_ten else bad)


def extra_keys(known=()):
    """Keys nobody asked for (the server's price and state fields among them), with values
    of any JSON type, nested one level (BAD_VALUES nests deeper in the fields themselves)."""
    keys = st.sampled_from(list(CLIENT_PRICE_FIELDS) + ["x", "id", "userId", "orderNumber", "__proto__",
                                                        *known]) | texts(12)
    values = st.one_of(SCALARS, TRICKY, st.lists(SCALARS, max_size=2), st.dictionaries(TRICKY, SCALARS, max_size=2))
    return st.dictionaries(keys, values, max_size=3)


def query_strings(names, values):
    """A query string: these names (and others), repeated or not, values as given or raw."""
    pair = st.tuples(st.sampled_from(names) | texts(8), values)
    encoded = st.lists(pair, max_size=4).map(
        lambda ps: "&".join(f"{urllib.parse.quote(k, safe='', errors='surrogatepass')}="
                            f"{urllib.parse.quote(v, safe='', errors='surrogatepass')}" for k, v in ps))
    raw = st.sampled_from(["", "&&&", "=", "operator", "operator=%ZZ", "limit=%", "cursor=%FF%FE",
                           "limit=1&limit=x", "%00=%00", "a[b]=1", "hours=1;days=2"])
    return mostly(encoded, raw, 8)


def quoted(text_strategy):
    safe = st.sampled_from(["", "", "/", "/;,=+&$@:!*'()"])
    return st.builds(lambda t, s: urllib.parse.quote(t, safe=s, errors="surrogatepass"), text_strategy, safe)


ALL_PREFIXES = sorted({p for ps in phones.OPERATOR_PREFIXES.values() for p in ps} | {"00", "11", "70", "85", "92"})
UNITEL_PREFIXES = list(phones.OPERATOR_PREFIXES["UNITEL"])
PHONE_FORMATS = [
    lambda n: n, lambda n: "+976" + n, lambda n: "+976 " + n[:4] + "-" + n[4:], lambda n: "00976" + n,
    lambda n: "976" + n, lambda n: "976 " + n, lambda n: f"(+976) {n[:2]} {n[2:5]} {n[5:]}",
    lambda n: f" {n[:4]}.{n[4:]}\t", lambda n: "+976-" + n, lambda n: n + "0", lambda n: n[:7],
    lambda n: "+977" + n, lambda n: n.translate(str.maketrans("0123456789", "０１２３４５６７８９")),
    lambda n: "+976\u00a0" + n, lambda n: "0" + n,
]


def phone_numbers(prefixes):
    """Numbers of these prefixes, written in every way the API accepts (and some it does
    not). The last six digits repeat often, so that an Idempotency-Key is sometimes
    replayed with the very same order."""
    national = st.builds(lambda p, rest: p + rest, st.sampled_from(prefixes),
                         st.sampled_from(["888888", "123456"]) | st.text("0123456789", min_size=6, max_size=6))
    return st.builds(lambda n, f: f(n), national, st.sampled_from(PHONE_FORMATS))


def authorization(good_headers, extra_bad=()):
    """A customer's Authorization header: mostly a good one, else anything."""
    bad = st.one_of(
        st.just({}),
        st.sampled_from(["", "Bearer", "Bearer ", "Bearer x.y.z", "Basic Zm9vOmJhcg==", "Token abc",
                         "Bearer " + "a" * 5000, *extra_bad]).map(lambda v: {"Authorization": v}),
        HEADER_TEXT.map(lambda v: {"Authorization": v}),
        HEADER_TEXT.map(lambda v: {"Authorization": "Bearer " + v}),
    )
    return mostly(st.sampled_from(good_headers), bad, 8)


def forged_tokens(app):
    """Tokens signed with the real key but naming nobody, or not even a mapping."""
    with app.test_request_context():
        s = customer_token_serializer()
        return ["Bearer " + s.dumps(x) for x in ({"uid": 987654321, "oid": "nobody"}, [1, 2], "x", {"oid": "o"})]


def misc_headers():
    return st.fixed_dictionaries({}, optional={
        "Content-Type": CONTENT_TYPES.filter(lambda v: v is not None),
        "X-Forwarded-For": HEADER_TEXT, "X-WX-OPENID": HEADER_TEXT, "User-Agent": HEADER_TEXT,
        "Accept": st.sampled_from(["application/json", "*/*", "text/plain"]),
        "X-Request-Id": st.sampled_from(["fuzz-1", "a" * 64, "a" * 65, "a b", "req=x"]) | HEADER_TEXT,
    })


def merge(*dicts):
    out = {}
    for d in dicts:
        out.update(d)
    return out


# -- set-up helpers ----------------------------------------------------------------------------

def new_order(client, headers, **changes):
    r = client.post("/orders", json={**SEED_ORDER, **changes}, headers=headers)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def pay_in_sandbox(client, headers, sandbox, n, deliver=True):
    r = client.post("/payment/create", json={"orderNumber": n}, headers=headers)
    assert r.status_code == 200, r.get_json()
    assert sandbox.pay(n, notify=False).status_code == 200
    notice = sandbox.notice(n)
    if deliver:
        r = client.post(notice["path"], data=json.dumps(notice["body"]), headers=notice["headers"])
        assert r.get_json() == {"errcode": 0, "errmsg": "OK"}, r.get_json()
    return notice


@pytest.fixture
def other(client):
    return login(client, "fuzz-other")


@pytest.fixture
def theirs(client, other):
    """Another customer's order."""
    return new_order(client, other)["orderNumber"]


@pytest.fixture
def forged(app):
    return forged_tokens(app)


# -- POST /auth/login ----------------------------------------------------------------------------

PRINTABLE = st.characters(categories=["L", "M", "N", "P", "S"])
LOGIN_CODES = mostly(
    st.one_of(st.text(PRINTABLE, min_size=1, max_size=128),
              st.builds(lambda c: f"  {c}\n", st.text(PRINTABLE, min_size=1, max_size=20)),
              st.builds(lambda c: "invalid" + c, st.text(PRINTABLE, max_size=20))),
    st.one_of(BAD_VALUES, st.text(PRINTABLE, min_size=129, max_size=140)), 6)


@fuzz(150)
@given(body=bodies(st.builds(merge, extra_keys(["codes", "js_code"]),
                             st.fixed_dictionaries({}, optional={"code": LOGIN_CODES}))),
       headers=misc_headers())
def test_fuzz_login(fz, body, headers):
    fz.send("POST", "/auth/login", data=body, headers=headers)


# -- GET /products -------------------------------------------------------------------------------

NAMES = st.sampled_from(["UNITEL", "MOBICOM", "SKYTEL", "GMOBILE", "VOICE", "DATA", "unitel", "", "A" * 16,
                         "A" * 17, "UNI TEL", "UNITEL\x00", "ÜNITEL"])


@fuzz(150)
@given(query=query_strings(["operator", "rechargeType"],
                           mostly(NAMES, st.one_of(texts(30), HUGE.map(lambda s: s[:3000])))),
       headers=misc_headers())
def test_fuzz_products(fz, query, headers):
    r = fz.send("GET", f"/products?{query}", headers=headers)
    if r.status_code == 200:
        assert all(p["totalFee"] > 0 for p in r.get_json()["products"])


# -- POST /orders ----------------------------------------------------------------------------------

FIELDS = ("phoneNumber", "productOperator", "rechargeType", "productCode")
PLAUSIBLY_WRONG = {
    "phoneNumber": phone_numbers(ALL_PREFIXES),
    "productOperator": st.sampled_from([*phones.OPERATOR_PREFIXES, "unitel", "Unitel", "VODAFONE", "UNI_TEL",
                                        "UNITEL" + "_" * 11]),
    "rechargeType": st.sampled_from(["SMS", "voice", "VOICE_", "DATA" * 5]),
    "productCode": st.sampled_from(["99999", "data1gb", "5000-", "0", "DATA1GB.", "a" * 33, "5000 5000"]),
}
IDEMPOTENCY_KEYS = mostly(
    st.just(None),
    st.sampled_from(["k1", "k2", "order-key.1:x", "A" * 64, "", " ", "a" * 65, "a b", "ключ", "k1\t", "é"]), 6)


@st.composite
def order_requests(draw):
    code, rtype = draw(st.sampled_from([(c, t) for c, t, _, _ in PRODUCTS]))
    body = draw(extra_keys(["productPriceTg", "phone", "operator"]).filter(lambda d: not set(d) & set(FIELDS)))
    body.update({"phoneNumber": draw(phone_numbers(UNITEL_PREFIXES)), "productOperator": "UNITEL",
                 "rechargeType": rtype, "productCode": code})
    if draw(st.integers(0, 4)) == 0:  # a clean body: no extra keys
        body = {k: body[k] for k in FIELDS}
    for f in FIELDS:  # each field kept four times in five, so that a random body is often valid
        how = draw(st.integers(0, 24))
        if how == 20:
            body[f] = draw(PLAUSIBLY_WRONG[f])
        elif how == 21:
            body[f] = draw(BAD_VALUES)
        elif how == 22:
            del body[f]
        elif how == 23:
            body[f] = draw(st.sampled_from([" ", "\t", "\u3000"])) + str(body[f]) + " "
        elif how == 24:
            body[f] = draw(st.sampled_from([[body[f]], {"value": body[f]}, None, 88888888, True]))
    return body


@fuzz(200)
@given(data=st.data())
def test_fuzz_create_order(fz, customer, other, forged, data):
    auth = data.draw(authorization([customer, customer, other], forged))
    key = data.draw(IDEMPOTENCY_KEYS)
    headers = merge(data.draw(misc_headers()), auth, {"Idempotency-Key": key} if key is not None else {})
    r = fz.send("POST", "/orders", data=data.draw(bodies(order_requests())), headers=headers)
    if r.status_code in (200, 201):
        o = r.get_json()
        assert phones.operator_of(o["phoneNumber"]) == "UNITEL" and o["totalFee"] > 0


# -- GET /orders ------------------------------------------------------------------------------------

@pytest.fixture
def more_orders(client, customer, order):
    return [order["orderNumber"]] + [new_order(client, customer)["orderNumber"] for _ in range(3)]


NUMBERS = st.one_of(st.integers(-5, 120).map(str), st.integers(0, 2 ** 64).map(str),
                    st.sampled_from(["", "0", "01", "1.5", "1e3", " 5", "5 ", "+5", "-1", "０", "²", "١٢",
                                     "9" * 19, "9" * 20, "9" * 5000, "0x10", "NaN", "∞"]))


@fuzz(150)
@given(data=st.data())
def test_fuzz_list_orders(fz, customer, more_orders, forged, data):
    cursors = [str(i) for i in range(1, 6)]
    values = mostly(NUMBERS, texts(20)) | st.sampled_from(cursors)
    query = data.draw(query_strings(["limit", "cursor"], values))
    headers = merge(data.draw(misc_headers()), data.draw(authorization([customer], forged)))
    r = fz.send("GET", f"/orders?{query}", headers=headers)
    if r.status_code == 200:
        assert len(r.get_json()["orders"]) <= 100


# -- GET /orders/<orderNumber> ----------------------------------------------------------------------

def order_number_texts(real):
    return st.one_of(
        st.sampled_from(real),
        st.builds(lambda d: "ORD" + d, st.text("0123456789", max_size=35)),
        st.builds(lambda n, s: n + s, st.sampled_from(real), texts(8)),
        st.builds(lambda n: n.lower(), st.sampled_from(real)),
        texts(60),
        st.sampled_from([".", "..", "%", "%2e%2e", "ORD' OR '1'='1", "ORD%", "ORD_", "*", "null", "0"]),
        HUGE.map(lambda s: s[:5000]),
    )


@fuzz(150)
@given(data=st.data())
def test_fuzz_get_order(fz, customer, order, other, theirs, forged, data):
    real = [order["orderNumber"], theirs]
    n = data.draw(mostly(st.sampled_from(real), quoted(order_number_texts(real)), 3))
    headers = merge(data.draw(misc_headers()), data.draw(authorization([customer, other], forged)))
    r = fz.send("GET", f"/orders/{n}", headers=headers)
    if r.status_code == 200:
        assert r.get_json()["orderNumber"] in real


# -- POST /payment/create ---------------------------------------------------------------------------

@pytest.fixture
def paid(client, customer, sandbox):
    n = new_order(client, customer)["orderNumber"]
    pay_in_sandbox(client, customer, sandbox, n)
    return n


@fuzz(150)
@given(data=st.data())
def test_fuzz_create_payment(fz, customer, order, other, theirs, paid, forged, data):
    real = [order["orderNumber"], theirs, paid]
    number = mostly(st.sampled_from(real), st.one_of(order_number_texts(real), BAD_VALUES), 5)
    body = st.builds(merge, extra_keys(["order_number", "totalFee"]),
                     st.fixed_dictionaries({}, optional={"orderNumber": number}))
    headers = merge(data.draw(misc_headers()), data.draw(authorization([customer, other], forged)))
    r = fz.send("POST", "/payment/create", data=data.draw(bodies(body)), headers=headers)
    if r.status_code == 200:
        assert r.get_json()["orderNumber"] in (order["orderNumber"], theirs)


# -- POST /payment/callback/<orderNumber> --------------------------------------------------------------

NOTICE_TEMPLATE = {
    "returnCode": "SUCCESS", "appid": "wxsandbox000000000", "mchId": "1800000000", "subAppid": "wxsandbox000000000",
    "subMchId": "1900000000", "nonceStr": "5K8264ILTKCH16CQ", "resultCode": "SUCCESS", "openid": "o-fuzz",
    "subOpenid": "o-fuzz", "tradeType": "JSAPI", "bankType": "OTHERS", "feeType": "CNY",
    "transactionId": "4200000000000000000000000000", "timeEnd": "20260118100000",
}


@st.composite
def notices(draw, orders):
    """A WeChat-shaped notice for one of `orders` ({number: fee}), each field kept, changed to
    another order's, of a wrong type, or missing."""
    n = draw(st.sampled_from(sorted(orders)))
    body = {**NOTICE_TEMPLATE, "totalFee": orders[n], "cashFee": orders[n], "outTradeNo": n,
            "attach": json.dumps({"orderNumber": n}, separators=(",", ":"))}
    others = {
        "totalFee": st.sampled_from([orders[n] + 1, orders[n] - 1, 0, -orders[n], str(orders[n]), float(orders[n]),
                                     True, 2 ** 63, *orders.values()]),
        "outTradeNo": st.sampled_from(sorted(orders) + [n.lower(), n + " ", ""]),
        "attach": st.sampled_from([json.dumps({"orderNumber": m}) for m in orders]
                                  + ["{}", "[]", "null", "not json", '{"orderNumber": 1}', json.dumps([n])]),
        "returnCode": st.sampled_from(["FAIL", "success", ""]),
        "resultCode": st.sampled_from(["FAIL", "success", ""]),
    }
    for field in list(body):
        how = draw(st.integers(0, 14))
        if how == 10 and field in others:
            body[field] = draw(others[field])
        elif how in (11, 12):
            body[field] = draw(BAD_VALUES)
        elif how == 13:
            del body[field]
    body.update(draw(extra_keys(["isSubscribe", "couponFee"])))
    return n, body


@pytest.fixture
def fees(client, customer, order, sandbox):
    """{order number: totalFee}: unpaid; paid at WeChat with its notice lost; paid and recharged."""
    lost = new_order(client, customer, productCode="10000")
    pay_in_sandbox(client, customer, sandbox, lost["orderNumber"], deliver=False)
    done = new_order(client, customer, productCode="1000")
    pay_in_sandbox(client, customer, sandbox, done["orderNumber"])
    return {order["orderNumber"]: order["totalFee"], lost["orderNumber"]: lost["totalFee"],
            done["orderNumber"]: done["totalFee"]}


@fuzz(200)
@given(data=st.data())
def test_fuzz_payment_callback(fz, fees, data):
    n, notice = data.draw(notices(fees))
    path_number = data.draw(mostly(st.just(n), quoted(order_number_texts(sorted(fees))), 7))
    body = data.draw(mostly(st.sampled_from(["ascii", "raw"]).map(lambda how: encode(notice, how)),
                            bodies(st.dictionaries(texts(8), JSON_ANY, max_size=5)), 7))
    headers = merge(data.draw(misc_headers()), data.draw(st.fixed_dictionaries({}, optional={
        "X-WX-SOURCE": st.sampled_from(["wxpay_callback", ""]) | HEADER_TEXT})))
    r = fz.send("POST", f"/payment/callback/{path_number}", data=body, headers=headers,
                ignore={"payment_notices"})
    if r.status_code == 200:
        assert r.get_json() in ({"errcode": 0, "errmsg": "OK"}, {"errcode": 1, "errmsg": "try again later"})


# -- POST /payment/refund-callback/<orderNumber> ------------------------------------------------------

REFUND_NOTICE_TEMPLATE = {
    "returnCode": "SUCCESS", "appid": "wxsandbox000000000", "mchId": "1800000000", "nonceStr": "5K8264ILTKCH16CQ",
    "transactionId": "4200000000000000000000000000", "refundId": "50300000000000000000000001",
    "refundStatus": "SUCCESS", "successTime": "2026-01-18 10:00:00", "refundRecvAccout": "支付用户零钱",
}


@pytest.fixture
def refund_orders(client, customer, order, sandbox):
    """{order number: totalFee}: unpaid; paid and recharged; a refund WeChat is still on."""
    done = new_order(client, customer, productCode="1000")
    pay_in_sandbox(client, customer, sandbox, done["orderNumber"])
    sandbox.refund_mode("processing")
    sandbox.mode("fail", "88000003")
    refunding = new_order(client, customer, phoneNumber="88000003")
    pay_in_sandbox(client, customer, sandbox, refunding["orderNumber"])
    return {o["orderNumber"]: o["totalFee"] for o in (order, done, refunding)}


@fuzz(150)
@given(data=st.data())
def test_fuzz_refund_callback(fz, refund_orders, data):
    """Whatever a refund notice says, only WeChat's refund query settles a refund: here it
    stays PROCESSING, so no order ever changes."""
    n = data.draw(st.sampled_from(sorted(refund_orders)))
    fee = refund_orders[n]
    notice = {**REFUND_NOTICE_TEMPLATE, "outTradeNo": n, "outRefundNo": "R" + n, "totalFee": fee,
              "refundFee": fee, "settlementRefundFee": fee}
    for field in list(notice):
        how = data.draw(st.integers(0, 12))
        if how == 10:
            notice[field] = data.draw(BAD_VALUES)
        elif how == 11:
            del notice[field]
    path_number = data.draw(mostly(st.just(n), quoted(order_number_texts(sorted(refund_orders))), 7))
    body = data.draw(mostly(st.sampled_from(["ascii", "raw"]).map(lambda how: encode(notice, how)),
                            bodies(st.dictionaries(texts(8), JSON_ANY, max_size=5)), 7))
    with fz.app.app_context():
        before = {m: dict(order_row(m)) for m in refund_orders}
    r = fz.send("POST", f"/payment/refund-callback/{path_number}", data=body,
                headers={"Content-Type": "application/json"}, ignore={"payment_notices", "operator_calls"})
    if r.status_code == 200:
        assert r.get_json() in ({"errcode": 0, "errmsg": "OK"}, {"errcode": 1, "errmsg": "try again later"})
    with fz.app.app_context():
        assert {m: dict(order_row(m)) for m in refund_orders} == before


def test_fuzzed_callbacks_never_submit_twice(client, customer, order, sandbox, fz):
    """After a storm of generated notices for one paid order, the operator saw it once."""
    lost = new_order(client, customer, productCode="3000")
    notice = pay_in_sandbox(client, customer, sandbox, lost["orderNumber"], deliver=False)

    @fuzz(40)
    @given(tweak=st.dictionaries(st.sampled_from(sorted(NOTICE_TEMPLATE)), BAD_VALUES, max_size=2))
    def storm(tweak):
        fz.send("POST", notice["path"], data=json.dumps({**notice["body"], **tweak}), headers=notice["headers"],
                ignore={"payment_notices"})

    storm()
    assert len(sandbox.submits_for(lost["orderNumber"])) == 1


# -- /admin -------------------------------------------------------------------------------------------

ADMIN_ROUTES = [("GET", "/admin"), ("GET", "/admin/reports.json"), ("GET", "/admin/orders/{n}"),
                ("POST", "/admin/orders/{n}/reconcile"), ("POST", "/admin/orders/{n}/refund"),
                ("POST", "/admin/orders/{n}/resolve"), ("POST", "/admin/logout"), ("POST", "/admin/login"),
                ("GET", "/admin/login")]
ADMIN_TOKEN = "test-admin-token"  # conftest's settings_env
FORM_TEXT = st.text(max_size=50)  # a form is encoded as UTF-8: no lone surrogates
FORM_CONTROL = CONTROL.filter(lambda c: not 0xD800 <= ord(c) <= 0xDFFF)
ACCEPT = st.sampled_from([None, "application/json", "text/html", "text/html,application/xhtml+xml,*/*;q=0.8",
                          "*/*", "image/png", "application/json;q=0.1, text/html"]) | HEADER_TEXT


@pytest.fixture
def admin_orders(client, customer, order, sandbox):
    """Orders each admin action can act on: flagged, recharge failed, recharge unknown."""
    flagged = new_order(client, customer)
    n = flagged["orderNumber"]
    sandbox.trade(n, flagged["totalFee"] + 1)  # WeChat confirms another amount: flags it
    sandbox.pay(n, notify=False)
    notice = sandbox.notice(n)
    client.post(notice["path"], data=json.dumps(notice["body"]), headers=notice["headers"])
    sandbox.mode("fail", "88000001")
    failed = new_order(client, customer, phoneNumber="88000001")["orderNumber"]
    pay_in_sandbox(client, customer, sandbox, failed)
    sandbox.mode("unknown", "88000002")
    unknown = new_order(client, customer, phoneNumber="88000002")["orderNumber"]
    pay_in_sandbox(client, customer, sandbox, unknown)
    sandbox.notices_delivered()  # the refund's notice, sent a moment later: not during the fuzzing
    return [order["orderNumber"], n, failed, unknown]


@fuzz(150)
@given(data=st.data())
def test_fuzz_admin(fz, app, client, admin_orders, data):
    real = admin_orders
    client.delete_cookie(admin_session.COOKIE_NAME, path=admin_session.COOKIE_PATH)  # no session left over
    method, template = data.draw(st.sampled_from(ADMIN_ROUTES))
    number = data.draw(mostly(st.sampled_from(real), quoted(order_number_texts(real)), 6))
    path = template.replace("{n}", number)

    headers = {}
    auth = data.draw(mostly(st.sampled_from([f"Bearer {ADMIN_TOKEN}", f"Bearer  {ADMIN_TOKEN}\t"]), st.one_of(
        st.none(), st.sampled_from(["", "Bearer", "Bearer ", f"bearer {ADMIN_TOKEN}", f"Bearer {ADMIN_TOKEN}x",
                                    f"Basic {ADMIN_TOKEN}", f"Bearer {ADMIN_TOKEN[:-1]}", ADMIN_TOKEN]),
        HEADER_TEXT, HEADER_TEXT.map(lambda v: "Bearer " + v)), 4))
    if auth is not None:
        headers["Authorization"] = auth
    accept = data.draw(ACCEPT)
    if accept is not None:
        headers["Accept"] = accept

    cookie = data.draw(st.sampled_from(["none", "valid", "garbage"]))
    form = data.draw(st.fixed_dictionaries({}, optional={
        "note": mostly(st.text(PRINTABLE, max_size=40),
                       st.one_of(FORM_TEXT, with_control(FORM_TEXT, FORM_CONTROL), st.just("n" * 1001), st.just("  ")), 6),
        "name": FORM_TEXT, "reason": st.sampled_from(["amount_mismatch", "x", ""]) | FORM_TEXT,
        "token": st.sampled_from([ADMIN_TOKEN, "", " " + ADMIN_TOKEN]) | FORM_TEXT,
        "next": st.sampled_from(["/admin", "/admin/orders/x", "//evil.example", "/admin/../x", "https://x"])
        | FORM_TEXT,
        "csrf_token": FORM_TEXT,
    }))
    with app.test_request_context():
        if cookie == "valid":
            value = admin_session.new_cookie_value(data.draw(FORM_TEXT))
            client.set_cookie(admin_session.COOKIE_NAME, value, path=admin_session.COOKIE_PATH)
            if data.draw(st.booleans()):
                form["csrf_token"] = admin_session.csrf_token(admin_session.read_cookie(value))
        elif cookie == "garbage":
            client.set_cookie(admin_session.COOKIE_NAME, data.draw(HEADER_TEXT.filter(lambda v: ";" not in v)),
                              path=admin_session.COOKIE_PATH)
    query = data.draw(query_strings(["hours", "days", "m", "next"], mostly(NUMBERS, texts(20), 6)))
    kw = {"data": form} if method == "POST" else {}
    if method == "POST" and data.draw(st.integers(0, 9)) == 0:
        kw = {"data": data.draw(RAW_BODIES), "content_type": data.draw(CONTENT_TYPES)}
    fz.send(method, f"{path}?{query}", headers=headers, **kw)


CATALOGUE_ROUTES = [("GET", "/admin/catalogue"), ("GET", "/admin/catalogue.json"), ("POST", "/admin/rate"),
                    ("POST", "/admin/products"), ("POST", "/admin/products/{p}/disable"),
                    ("POST", "/admin/products/{p}/enable"), ("POST", "/admin/products/{p}/price")]
PRODUCT_KEYS = st.sampled_from(["UNITEL/VOICE/5000", "UNITEL/DATA/DATA1GB", "UNITEL/VOICE/4999", "unitel/voice/5000",
                                "NOPE/VOICE/5000", "UNITEL/SMS/5000", "UNITEL/VOICE/a%20b"]) | st.builds(
    lambda a, b, c: f"{a}/{b}/{c}", quoted(texts(6)).filter(bool), quoted(texts(6)).filter(bool),
    quoted(texts(6)).filter(bool))
RATES = st.sampled_from(["0.0021", "0.00211", "0.0022", "0.0042", "1e-3", "-1", "0", "0.000000001", "NaN", " ",
                         "0.00210000", "99999999999"]) | FORM_TEXT
PRICES = st.sampled_from(["5000", "5100", "9000", "0", "-1", "5000.5", "1e4", "５０００", "999999999"]) | FORM_TEXT


@fuzz(150)
@given(data=st.data())
def test_fuzz_admin_catalogue(fz, app, client, data):
    """The rate and catalogue routes: a refused change changes no row (the fuzzer's check),
    and whatever is accepted leaves exactly one active rate."""
    client.delete_cookie(admin_session.COOKIE_NAME, path=admin_session.COOKIE_PATH)
    method, template = data.draw(st.sampled_from(CATALOGUE_ROUTES))
    path = template.replace("{p}", data.draw(PRODUCT_KEYS))
    headers = {}
    auth = data.draw(mostly(st.just(f"Bearer {ADMIN_TOKEN}"), st.one_of(
        st.none(), st.sampled_from(["Bearer", f"Bearer {ADMIN_TOKEN}x"]), HEADER_TEXT), 6))
    if auth is not None:
        headers["Authorization"] = auth
    accept = data.draw(ACCEPT)
    if accept is not None:
        headers["Accept"] = accept
    form = data.draw(st.fixed_dictionaries({}, optional={
        "rate": RATES, "price": PRICES, "note": mostly(st.text(PRINTABLE, max_size=40), FORM_TEXT, 6),
        "force": st.sampled_from(["1", "", "0", "yes"]) | FORM_TEXT, "name": FORM_TEXT,
        "operator": st.sampled_from(["UNITEL", "unitel", "ONDO", "X"]) | FORM_TEXT,
        "rechargeType": st.sampled_from(["VOICE", "DATA", "SMS"]) | FORM_TEXT,
        "code": st.sampled_from(["5000", "FUZZ1", "a b", ""]) | FORM_TEXT,
        "productName": st.sampled_from(["Fuzz product", "", " "]) | FORM_TEXT,
        "csrf_token": FORM_TEXT,
    }))
    if data.draw(st.booleans()):
        with app.test_request_context():
            value = admin_session.new_cookie_value("fuzz")
            client.set_cookie(admin_session.COOKIE_NAME, value, path=admin_session.COOKIE_PATH)
            if data.draw(st.booleans()):
                form["csrf_token"] = admin_session.csrf_token(admin_session.read_cookie(value))
    fz.send(method, path, headers=headers, **({"data": form} if method == "POST" else {}))
    with app.app_context():
        with db.engine.connect() as c:
            assert c.execute(sa.text("SELECT COUNT(*) FROM exchange_rates WHERE is_active = :t"),
                             {"t": True}).scalar() == 1


# -- any method, any path -------------------------------------------------------------------------------

KNOWN_PATHS = ["/", "/health", "/openapi.json", "/auth/login", "/products", "/orders", "/orders/{n}",
               "/payment/create", "/payment/callback/{n}", "/payment/refund-callback/{n}", "/admin", "/admin/login",
               "/static/x", "/static/../x",
               "/metrics", "/admin/catalogue", "/admin/rate", "/admin/products"]


@fuzz(150)
@given(data=st.data())
def test_fuzz_any_method_and_path(fz, client, customer, order, data):
    method = data.draw(st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE"]))
    path = data.draw(mostly(st.sampled_from(KNOWN_PATHS), quoted(texts(40)).map(lambda p: "/" + p), 6))
    path = path.replace("{n}", data.draw(quoted(order_number_texts([order["orderNumber"]]))))
    headers = merge(data.draw(misc_headers()), data.draw(authorization([customer])))
    kw = {}
    if data.draw(st.booleans()):
        kw["data"] = data.draw(bodies(JSON_ANY))
    fz.send(method, path, headers=headers, ignore={"payment_notices"} if path.startswith(
        ("/payment/callback/", "/payment/refund-callback/")) else (), **kw)


# -- behind WeChat Cloud Hosting -------------------------------------------------------------------

@pytest.fixture
def wx(app, make_app):
    """The service as deployed behind Cloud Hosting: X-WX-OPENID identifies the customer,
    X-Forwarded-For the address, and callbacks must carry X-WX-SOURCE."""
    wx_app = make_app(TRUST_WX_HEADERS="true", REQUIRE_WX_SOURCE="true")
    f = Fuzzer(wx_app, wx_app.test_client())
    yield f
    f.close()


OPENIDS = st.sampled_from(["o-fuzz-a", "o-fuzz-b", "O-FUZZ-A", "o-fuzz-a ", "o" * 64, "o" * 65, "", " "]) | HEADER_TEXT
LOGIN_BODIES = bodies(st.builds(merge, extra_keys(), st.fixed_dictionaries({}, optional={"code": LOGIN_CODES})))


@fuzz(100)
@given(data=st.data())
def test_fuzz_behind_cloud_hosting(wx, order, data):
    method, path = data.draw(st.sampled_from([("GET", "/orders"), ("POST", "/orders"), ("GET", "/orders/{n}"),
                                              ("POST", "/payment/callback/{n}"), ("POST", "/auth/login")]))
    n, notice = data.draw(notices({order["orderNumber"]: order["totalFee"]}))
    path = path.replace("{n}", data.draw(mostly(st.just(n), quoted(order_number_texts([n])), 6)))
    headers = data.draw(st.fixed_dictionaries({
        "X-WX-OPENID": mostly(OPENIDS, st.none(), 7),
        "X-WX-SOURCE": st.sampled_from(["wxpay_callback", None, ""]) | HEADER_TEXT,
        "X-Forwarded-For": st.sampled_from(["1.2.3.4", "1.2.3.4, 10.0.0.1", ",", " ", "::1" * 20]) | HEADER_TEXT,
    }, optional={"Authorization": st.sampled_from(["", "Bearer x"]) | HEADER_TEXT}))
    headers = {k: v for k, v in headers.items() if v is not None}
    body = {"/orders": bodies(order_requests()), "/auth/login": LOGIN_BODIES}.get(
        path, mostly(st.just(encode(notice, "ascii")), bodies(JSON_ANY), 7))
    # A customer's first request through the platform creates their user row, as a login
    # would, whatever becomes of the request itself.
    wx.send(method, path, headers=headers, data=data.draw(body) if method == "POST" else None,
            ignore={"users", "payment_notices"} if "X-WX-OPENID" in headers or "callback" in path else ())


# -- the figures ----------------------------------------------------------------------------------------

def test_fuzz_figures():
    """Runs last (file order): the figures the issue asks for."""
    if not TALLY["requests"]:
        pytest.skip("no fuzz test ran")
    print(f"\nfuzz: {TALLY['requests']} requests, {TALLY['5xx']} responses >= 500")
    for op, counts in sorted(STATUSES.items()):
        print(f"  {op}: " + ", ".join(f"{s}x{c}" for s, c in sorted(counts.items())))
    assert TALLY["5xx"] == 0
