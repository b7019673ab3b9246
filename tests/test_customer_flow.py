"""The customer flow as the mini-program sees it: login through WeChat (the sandbox, over
real HTTP), tokens, the catalogue, creating and reading orders, ownership, pagination and
Idempotency-Key.

No test here holds an app context open while it makes requests (Flask would reuse it,
and the caller cached on `g` would leak from one request into the next).
"""
import base64
import json
import re
import socket
import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
import requests
import sqlalchemy as sa
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from conftest import SEED_ORDER, login, mysql_only, order_row, row_counts
from elife.extensions import db
from elife.timeutil import utcnow

SECRET = "test-secret"           # settings_env's SECRET_KEY
MISSING = "ORD" + "0" * 22         # shaped like ours, never issued


# Rate-limit counters (written for every request, rejected ones too: that is their job)
# are bookkeeping, not stored data; every other table must stay as it was.
BOOKKEEPING = {"rate_limits"}


def counts(app):
    with app.app_context():
        return {t: n for t, n in row_counts().items() if t not in BOOKKEEPING}


def error_of(r, status, code):
    assert r.status_code == status, (r.status_code, r.data[:300])
    assert r.is_json, r.data[:300]
    body = r.get_json()
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body


def create(client, headers, **over):
    r = client.post("/orders", json={**SEED_ORDER, **over}, headers=headers)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def token_of(headers):
    return headers["Authorization"].split(" ", 1)[1]


def token_payload(token):
    """The (signed, not secret) payload of one of our tokens."""
    raw = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))


def sign(payload, secret=SECRET, age_seconds=0):
    from elife.api.auth import _SALT

    class Signer(TimestampSigner):
        def get_timestamp(self):
            return int(time.time()) - age_seconds

    return URLSafeTimedSerializer(secret, salt=_SALT, signer=Signer).dumps(payload)


# -- login -----------------------------------------------------------------------------------

def test_login_returns_a_token_that_works(app, client):
    before = counts(app)
    r = client.post("/auth/login", json={"code": "first-login"})
    assert r.status_code == 200
    body = r.get_json()
    assert set(body) == {"token", "expiresIn"}
    assert isinstance(body["token"], str) and len(body["token"]) > 20
    assert body["expiresIn"] == 7 * 24 * 3600
    assert counts(app)["users"] == before["users"] + 1
    r = client.get("/orders", headers={"Authorization": f"Bearer {body['token']}"})
    assert r.status_code == 200 and r.get_json()["orders"] == []


def test_the_same_code_is_the_same_user(app, client):
    a1 = login(client, "same-person")
    before = counts(app)
    a2 = login(client, "same-person")
    assert counts(app) == before              # no second user
    n = create(client, a1)["orderNumber"]
    assert client.get(f"/orders/{n}", headers=a2).status_code == 200


@pytest.mark.parametrize("body", [{}, {"code": ""}, {"code": "   "}, {"code": None}, {"other": "x"}])
def test_login_without_a_code_is_400(app, client, body):
    before = counts(app)
    error_of(client.post("/auth/login", json=body), 400, "missing_field")
    assert counts(app) == before


@pytest.mark.parametrize("code", ["invalid", "invalid-code", "invalid_0123456789"])
def test_a_code_wechat_rejects_is_401(app, client, code):
    before = counts(app)
    error_of(client.post("/auth/login", json={"code": code}), 401, "invalid_code")
    assert counts(app) == before


def test_wechat_refusing_connections_is_a_quick_502(app, make_app):
    with socket.socket() as s:                 # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = make_app(WECHAT_API_BASE=f"http://127.0.0.1:{port}/wechat").test_client()
    before = counts(app)
    started = time.monotonic()
    error_of(down.post("/auth/login", json={"code": "any"}), 502, "wechat_unavailable")
    assert time.monotonic() - started < 2
    assert counts(app) == before


def test_wechat_not_answering_is_a_502_within_the_timeout(app, make_app):
    """Accepts the connection, never answers: the read timeout (1 s here) ends the wait."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        port = s.getsockname()[1]
        silent = make_app(WECHAT_API_BASE=f"http://127.0.0.1:{port}/wechat", WECHAT_TIMEOUT="0.5")
        started = time.monotonic()
        error_of(silent.test_client().post("/auth/login", json={"code": "any"}), 502, "wechat_unavailable")
        assert time.monotonic() - started < 3


# -- tokens ----------------------------------------------------------------------------------

def test_no_token_is_401_on_every_customer_endpoint(client, order):
    for method, path, body in [("post", "/orders", SEED_ORDER), ("get", "/orders", None),
                               ("get", f"/orders/{order['orderNumber']}", None)]:
        error_of(getattr(client, method)(path, json=body), 401, "missing_token")


@pytest.mark.parametrize("header", ["", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc"])
def test_a_missing_or_other_scheme_token_is_401(client, header):
    r = client.get("/orders", headers={"Authorization": header})
    assert r.status_code == 401 and r.is_json
    assert r.get_json()["error"]["code"] in ("missing_token", "invalid_token")


def test_an_expired_token_is_401(app, client, customer):
    payload = token_payload(token_of(customer))
    old = sign(payload, age_seconds=7 * 24 * 3600 + 5)
    error_of(client.get("/orders", headers={"Authorization": f"Bearer {old}"}), 401, "token_expired")
    error_of(client.get("/orders", headers={"Authorization": f"bearer {old}"}), 401, "token_expired")
    # the same payload, freshly signed, is accepted: the age is what failed
    fresh = sign(payload)
    assert client.get("/orders", headers={"Authorization": f"Bearer {fresh}"}).status_code == 200


def test_token_lifetime_comes_from_settings(app, make_app):
    short = make_app(TOKEN_TTL_SECONDS=1).test_client()
    r = short.post("/auth/login", json={"code": "short-lived"})
    assert r.status_code == 200 and r.get_json()["expiresIn"] == 1
    headers = {"Authorization": f"Bearer {r.get_json()['token']}"}
    assert short.get("/orders", headers=headers).status_code == 200
    time.sleep(2.1)
    before = counts(app)
    error_of(short.get("/orders", headers=headers), 401, "token_expired")
    error_of(short.post("/orders", json=SEED_ORDER, headers=headers), 401, "token_expired")
    assert counts(app) == before


def test_a_tampered_token_is_401(app, client):
    a = login(client, "tamper-a")
    b = login(client, "tamper-b")
    token = token_of(a)
    payload_a, ts, sig = token.split(".")
    payload_b = token_of(b).split(".")[0]
    # Change the first character: the last one of a base64 signature carries bits the
    # decoder ignores, so changing it can leave the very same signature (a flaky test).
    flipped = ("A" if sig[0] != "A" else "B") + sig[1:]
    candidates = [
        f"{payload_b}.{ts}.{sig}",          # B's identity under A's signature
        f"{payload_a}.{ts}.{flipped}",      # signature changed
        f"{payload_a}.{ts}",                # signature cut off
        token[:-5],                          # truncated
        token + "x",
        "not-a-token",
        "a.b.c",
    ]
    for t in candidates:
        error_of(client.get("/orders", headers={"Authorization": f"Bearer {t}"}), 401, "invalid_token")


def test_a_token_signed_with_another_secret_is_401(app, client, make_app):
    other = make_app(SECRET_KEY="someone-elses-secret").test_client()
    foreign = login(other, "customer-a")
    assert other.get("/orders", headers=foreign).status_code == 200   # valid where it was made
    error_of(client.get("/orders", headers=foreign), 401, "invalid_token")
    error_of(client.post("/orders", json=SEED_ORDER, headers=foreign), 401, "invalid_token")


@pytest.mark.parametrize("payload", [
    {"uid": 999999, "oid": "nobody"},       # no such user
    "just a string",
    [1, 2],
    {"uid": "1", "oid": "x"},
    {},
])
def test_a_well_signed_token_for_no_real_user_is_401(client, customer, payload):
    error_of(client.get("/orders", headers={"Authorization": f"Bearer {sign(payload)}"}), 401, "invalid_token")


def test_a_token_naming_another_users_id_with_the_wrong_openid_is_401(client, customer):
    a = token_payload(token_of(customer))
    forged = sign({"uid": a["uid"], "oid": "o-someone-else"})
    error_of(client.get("/orders", headers={"Authorization": f"Bearer {forged}"}), 401, "invalid_token")


# -- X-WX-OPENID ------------------------------------------------------------------------------

def test_trusted_wx_openid_header_is_a_login(app, make_app):
    wx = make_app(TRUST_WX_HEADERS="true").test_client()
    me = {"X-WX-OPENID": "oWX-cloud-user-1", "X-WX-SOURCE": "wx_client"}
    before = counts(app)
    r = wx.post("/orders", json=SEED_ORDER, headers=me)
    assert r.status_code == 201, r.get_json()
    n = r.get_json()["orderNumber"]
    assert counts(app)["users"] == before["users"] + 1
    assert [o["orderNumber"] for o in wx.get("/orders", headers=me).get_json()["orders"]] == [n]
    assert wx.get(f"/orders/{n}", headers=me).status_code == 200
    # another openid is another user
    other = {"X-WX-OPENID": "oWX-cloud-user-2", "X-WX-SOURCE": "wx_client"}
    error_of(wx.get(f"/orders/{n}", headers=other), 404, "order_not_found")
    assert wx.get("/orders", headers=other).get_json()["orders"] == []
    # an openid no real WeChat would send
    error_of(wx.get("/orders", headers={"X-WX-OPENID": "o" * 65, "X-WX-SOURCE": "wx_client"}), 401,
             "invalid_openid")
    # a bearer token still works there
    tok = login(wx, "bearer-behind-wx")
    assert wx.get("/orders", headers=tok).status_code == 200


def test_wx_openid_is_a_login_only_as_the_platform_forwards_it(app, make_app, log_dir):
    """Issue 16, finding 4: X-WX-OPENID alone was a password. It counts only with the
    platform's X-WX-SOURCE, and with X-WX-ENV naming our environment when it is sent."""
    wx = make_app(TRUST_WX_HEADERS="true", WECHAT_ENV_ID="prod-elife").test_client()
    victim = {"X-WX-OPENID": "oWX-victim"}
    before = counts(app)
    for headers in (victim, {**victim, "X-WX-SOURCE": ""},
                    {**victim, "X-WX-SOURCE": "wx_client", "X-WX-ENV": "someone-elses-env"},
                    {**victim, "X-WX-SOURCE": "wx_client", "X-WX-ENV": ""}):
        error_of(wx.get("/orders", headers=headers), 401, "invalid_openid")
        error_of(wx.post("/orders", json=SEED_ORDER, headers=headers), 401, "invalid_openid")
    assert counts(app) == before  # no user made for the forged openid
    text = (log_dir / "combined.log").read_text(encoding="utf-8")
    assert "event=wx_openid_refused" in text
    assert wx.get("/orders", headers={**victim, "X-WX-SOURCE": "wx_client"}).status_code == 200
    assert wx.get("/orders", headers={**victim, "X-WX-SOURCE": "wx_client", "X-WX-ENV": "prod-elife"}) \
        .status_code == 200


def test_trusting_wx_headers_is_warned_about_at_start(make_app, sandbox, log_dir):
    def warnings():
        text = (log_dir / "combined.log").read_text(encoding="utf-8")
        return [ln for ln in text.splitlines() if "WARNING elife.auth event=trust_wx_headers" in ln]

    before = len(warnings())
    make_app()
    assert len(warnings()) == before
    make_app(TRUST_WX_HEADERS="true")
    assert len(warnings()) == before + 1
    assert "reachable only through WeChat Cloud Hosting" in warnings()[-1]


def test_wx_openid_header_is_ignored_when_not_trusted(app, client):
    owner = login(client, "wx-owner")
    n = create(client, owner)["orderNumber"]
    openid = token_payload(token_of(owner))["oid"]     # even the owner's real openid
    spoof = {"X-WX-OPENID": openid, "X-WX-SOURCE": "wx_client"}
    before = counts(app)
    error_of(client.get("/orders", headers=spoof), 401, "missing_token")
    error_of(client.get(f"/orders/{n}", headers=spoof), 401, "missing_token")
    error_of(client.post("/orders", json=SEED_ORDER, headers=spoof), 401, "missing_token")
    error_of(client.get("/orders", headers={"X-WX-OPENID": "o-brand-new"}), 401, "missing_token")
    assert counts(app) == before


# -- products ---------------------------------------------------------------------------------

def _codes(r):
    assert r.status_code == 200, r.get_json()
    return [(p["productOperator"], p["rechargeType"], p["productCode"]) for p in r.get_json()["products"]]


def test_products_without_filters(client):
    r = client.get("/products")
    items = r.get_json()["products"]
    assert len(items) == 9
    for p in items:
        assert set(p) >= {"productCode", "productOperator", "rechargeType", "name", "priceTg",
                          "priceRmb", "totalFee"}
        assert p["name"] and isinstance(p["name"], str)
        assert re.fullmatch(r"\d+\.\d\d", p["priceRmb"])
        assert Decimal(p["priceRmb"]) * 100 == p["totalFee"]
    seed = [p for p in items if p["productCode"] == "5000"][0]
    assert seed == {**seed, "productOperator": "UNITEL", "rechargeType": "VOICE", "priceTg": 5000,
                    "priceRmb": "10.50", "totalFee": 1050}


@pytest.mark.parametrize("query, expected", [
    ({"operator": "UNITEL"}, 9),
    ({"rechargeType": "VOICE"}, 6),
    ({"rechargeType": "DATA"}, 3),
    ({"operator": "UNITEL", "rechargeType": "DATA"}, 3),
    ({"operator": "MOBICOM"}, 0),
    ({"operator": "UNITEL", "rechargeType": "SMS"}, 0),
    ({"operator": "", "rechargeType": ""}, 9),
])
def test_products_with_filters(client, query, expected):
    codes = _codes(client.get("/products", query_string=query))
    assert len(codes) == expected
    for op, rtype, _ in codes:
        assert op == query.get("operator") or not query.get("operator")
        assert rtype == query.get("rechargeType") or not query.get("rechargeType")


def test_products_need_no_login_and_change_nothing(app, client):
    before = counts(app)
    assert client.get("/products").status_code == 200
    assert counts(app) == before


# -- orders -----------------------------------------------------------------------------------

def test_the_seed_order(app, client, customer):
    before = counts(app)
    r = client.post("/orders", json=SEED_ORDER, headers=customer)
    assert r.status_code == 201
    o = r.get_json()
    assert re.fullmatch(r"ORD[0-9]+", o["orderNumber"])
    assert type(o["totalFee"]) is int and o["totalFee"] == 1050
    assert o["productPriceRmb"] == "10.50"
    assert o["productPriceTg"] == 5000
    assert o["paymentStatus"] == "unpaid" and o["rechargeStatus"] == "pending"
    assert (o["phoneNumber"], o["productOperator"], o["rechargeType"], o["productCode"]) == \
        ("88888888", "UNITEL", "VOICE", "5000")
    assert o["paidAt"] is None and o["rechargedAt"] is None and o["refundedAt"] is None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", o["createdAt"])
    after = counts(app)
    assert after["orders"] == before["orders"] + 1
    with app.app_context():
        row = order_row(o["orderNumber"])
    assert row["total_fee"] == 1050 and row["payment_status"] == "unpaid"
    assert row["recharge_status"] == "pending" and row["recharge_at"] is None
    assert row["phone_number"] == "88888888" and row["version"] == 0
    # read back: the same order
    got = client.get(f"/orders/{o['orderNumber']}", headers=customer)
    assert got.status_code == 200 and got.get_json() == o


def test_order_numbers_are_unique_and_not_sequential(client, customer):
    numbers = [create(client, customer)["orderNumber"] for _ in range(5)]
    assert len(set(numbers)) == 5
    ints = [int(n[3:]) for n in numbers]
    steps = {b - a for a, b in zip(ints, ints[1:])}
    assert not steps & {1, -1, 0}, "the next order number must not be guessable from the last"
    assert len(steps) > 1, "not a fixed step either"


def test_another_users_order_is_a_404_like_a_missing_one(app, client):
    a = login(client, "owner-a")
    b = login(client, "stranger-b")
    n = create(client, a)["orderNumber"]
    missing = error_of(client.get(f"/orders/{MISSING}", headers=b), 404, "order_not_found")
    foreign = error_of(client.get(f"/orders/{n}", headers=b), 404, "order_not_found")
    assert foreign == missing
    # and the same for its owner asking for a missing one
    assert error_of(client.get(f"/orders/{MISSING}", headers=a), 404, "order_not_found") == missing
    assert client.get(f"/orders/{n}", headers=a).status_code == 200


def test_another_users_orders_never_appear_in_a_list(client):
    a = login(client, "lister-a")
    b = login(client, "lister-b")
    mine_a = {create(client, a)["orderNumber"] for _ in range(3)}
    mine_b = {create(client, b, productCode="1000")["orderNumber"]}
    mine_a.add(create(client, a)["orderNumber"])
    for who, mine, other in [(a, mine_a, mine_b), (b, mine_b, mine_a)]:
        seen, cursor = [], None
        while True:
            q = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            body = client.get("/orders", query_string=q, headers=who).get_json()
            seen += [o["orderNumber"] for o in body["orders"]]
            cursor = body["nextCursor"]
            if not cursor:
                break
        assert set(seen) == mine and not set(seen) & other
        # a cursor can not be used to reach past the caller's own orders
        body = client.get("/orders", query_string={"cursor": 2**40}, headers=who).get_json()
        assert {o["orderNumber"] for o in body["orders"]} == mine


def test_list_is_newest_first_and_pages_with_a_cursor(client, customer):
    made = [create(client, customer, productCode=code)["orderNumber"]
            for code in ("1000", "2000", "3000", "5000", "10000")]
    newest_first = list(reversed(made))
    r = client.get("/orders", headers=customer)
    assert r.status_code == 200
    body = r.get_json()
    assert [o["orderNumber"] for o in body["orders"]] == newest_first
    assert body["nextCursor"] is None

    pages, cursor = [], None
    while True:
        q = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = client.get("/orders", query_string=q, headers=customer).get_json()
        pages.append([o["orderNumber"] for o in body["orders"]])
        cursor = body["nextCursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str)
    assert pages == [newest_first[0:2], newest_first[2:4], newest_first[4:5]]

    # exactly a page's worth: no empty page after it
    body = client.get("/orders", query_string={"limit": 5}, headers=customer).get_json()
    assert len(body["orders"]) == 5 and body["nextCursor"] is None
    body = client.get("/orders", query_string={"limit": 4}, headers=customer).get_json()
    assert len(body["orders"]) == 4 and body["nextCursor"] is not None


def test_list_default_limit_is_20_and_100_is_allowed(client, customer):
    for _ in range(21):
        create(client, customer)
    body = client.get("/orders", headers=customer).get_json()
    assert len(body["orders"]) == 20 and body["nextCursor"] is not None
    rest = client.get("/orders", query_string={"cursor": body["nextCursor"]}, headers=customer).get_json()
    assert len(rest["orders"]) == 1 and rest["nextCursor"] is None
    body = client.get("/orders", query_string={"limit": 100}, headers=customer).get_json()
    assert len(body["orders"]) == 21 and body["nextCursor"] is None
    body = client.get("/orders", query_string={"limit": 1}, headers=customer).get_json()
    assert len(body["orders"]) == 1


@pytest.mark.parametrize("query", [
    {"limit": "0"}, {"limit": "101"}, {"limit": "-1"}, {"limit": "abc"}, {"limit": "1.5"},
    {"limit": " 5"}, {"limit": "99999999999999999999999"}, {"limit": "1e2"},
    {"cursor": "abc"}, {"cursor": "0"}, {"cursor": "-5"}, {"cursor": "1 OR 1=1"},
])
def test_list_limit_and_cursor_bounds_are_400(app, client, customer, query):
    before = counts(app)
    error_of(client.get("/orders", query_string=query, headers=customer), 400, "invalid_parameter")
    assert counts(app) == before


# -- Idempotency-Key --------------------------------------------------------------------------

def test_idempotency_key_reused_for_another_order_is_422(client, customer):
    key = {"Idempotency-Key": "reused-key", **customer}
    first = client.post("/orders", json=SEED_ORDER, headers=key)
    assert first.status_code == 201
    other = client.post("/orders", json={**SEED_ORDER, "productCode": "1000"}, headers=key)
    error_of(other, 422, "idempotency_key_reused")
    again = client.post("/orders", json={**SEED_ORDER, "phoneNumber": "+976 8888-8888"}, headers=key)
    assert again.status_code == 200 and again.get_json()["orderNumber"] == first.get_json()["orderNumber"]


def test_a_retried_create_with_the_same_key_returns_the_same_order(app, client, customer):
    key = {"Idempotency-Key": "retry-0001", **customer}
    before = counts(app)
    r1 = client.post("/orders", json=SEED_ORDER, headers=key)
    assert r1.status_code == 201
    r2 = client.post("/orders", json=SEED_ORDER, headers=key)
    assert r2.status_code in (200, 201)
    assert r2.get_json() == r1.get_json()
    after = counts(app)
    assert after["orders"] == before["orders"] + 1
    assert after["idempotency_keys"] == before["idempotency_keys"] + 1
    listed = client.get("/orders", headers=customer).get_json()["orders"]
    assert [o["orderNumber"] for o in listed] == [r1.get_json()["orderNumber"]]


def test_different_keys_or_no_key_make_different_orders(app, client, customer):
    before = counts(app)
    n1 = client.post("/orders", json=SEED_ORDER, headers={"Idempotency-Key": "k-1", **customer}).get_json()
    n2 = client.post("/orders", json=SEED_ORDER, headers={"Idempotency-Key": "k-2", **customer}).get_json()
    n3 = create(client, customer)
    n4 = create(client, customer)
    assert len({n["orderNumber"] for n in (n1, n2, n3, n4)}) == 4
    assert counts(app)["orders"] == before["orders"] + 4


def test_a_key_belongs_to_one_user(app, client):
    a = login(client, "idem-a")
    b = login(client, "idem-b")
    ra = client.post("/orders", json=SEED_ORDER, headers={"Idempotency-Key": "shared", **a})
    rb = client.post("/orders", json=SEED_ORDER, headers={"Idempotency-Key": "shared", **b})
    assert ra.status_code == 201 and rb.status_code == 201
    assert ra.get_json()["orderNumber"] != rb.get_json()["orderNumber"]
    error_of(client.get(f"/orders/{ra.get_json()['orderNumber']}", headers=b), 404, "order_not_found")


def test_a_key_is_remembered_for_24_hours_only(app, client, customer):
    key = {"Idempotency-Key": "day-old", **customer}
    first = client.post("/orders", json=SEED_ORDER, headers=key).get_json()["orderNumber"]
    with app.app_context():
        db.session.execute(sa.text("UPDATE idempotency_keys SET created_at = :t"),
                           {"t": utcnow() - timedelta(hours=23)})
        db.session.commit()
    assert client.post("/orders", json=SEED_ORDER, headers=key).get_json()["orderNumber"] == first
    with app.app_context():
        db.session.execute(sa.text("UPDATE idempotency_keys SET created_at = :t"),
                           {"t": utcnow() - timedelta(hours=25)})
        db.session.commit()
    r = client.post("/orders", json=SEED_ORDER, headers=key)
    assert r.status_code == 201 and r.get_json()["orderNumber"] != first
    assert counts(app)["idempotency_keys"] == 1


@pytest.mark.parametrize("key", ["", "has space", "x" * 65, "semi;colon", "quote'", "slash/"])
def test_a_malformed_idempotency_key_is_400(app, client, customer, key):
    before = counts(app)
    error_of(client.post("/orders", json=SEED_ORDER, headers={"Idempotency-Key": key, **customer}),
             400, "invalid_idempotency_key")
    assert counts(app) == before


def burst(live, headers_list):
    """POST /orders once per headers, all released at the same moment; [(status, body)]."""
    barrier = threading.Barrier(len(headers_list))
    results = [None] * len(headers_list)

    def go(i):
        with requests.Session() as s:
            barrier.wait()
            r = s.post(f"{live.url}/orders", json=SEED_ORDER, headers=headers_list[i], timeout=20)
            is_json = r.headers.get("Content-Type", "").startswith("application/json")
            results[i] = (r.status_code, r.json() if is_json else r.text)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(headers_list))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert all(r is not None for r in results), results
    return results


@mysql_only
def test_concurrent_creates_with_one_key_make_one_order(app, live):
    me = live.login("concurrent-idem")
    numbers = set()
    for round_ in range(3):
        headers = {**me, "Idempotency-Key": f"flaky-network-retry-{round_}"}
        results = burst(live, [headers] * 8)
        statuses = [s for s, _ in results]
        assert all(s in (200, 201) for s in statuses), results
        assert statuses.count(201) == 1, statuses
        got = {body["orderNumber"] for _, body in results}
        assert len(got) == 1, got
        numbers |= got
    assert len(numbers) == 3
    with app.app_context():
        assert row_counts()["orders"] == 3
        assert row_counts()["idempotency_keys"] == 3
        for n in numbers:
            assert order_row(n)["total_fee"] == 1050


@mysql_only
def test_concurrent_creates_with_different_keys_make_one_order_each(app, live):
    """Every create from the mini-program carries a key: concurrent ones must not collide."""
    a, b = live.login("concurrent-a"), live.login("concurrent-b")
    headers = [{**(a if i % 2 else b), "Idempotency-Key": f"key-{i}"} for i in range(8)]
    results = burst(live, headers)
    assert [s for s, _ in results] == [201] * 8, results
    assert len({body["orderNumber"] for _, body in results}) == 8
    with app.app_context():
        assert row_counts()["orders"] == 8
        assert row_counts()["idempotency_keys"] == 8
