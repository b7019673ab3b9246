"""Payment (issue 4): /payment/create, the callback that cannot be forged, and the client's
refund. In-process app, a real database (SQLite file or MariaDB) and the sandbox as a real
HTTP server. The sandbox's own callback delivery goes to the gunicorn service, so here a
trade is paid with `notify: false` and its exact notice is delivered through the test
client. The gunicorn tests are in test_payment_e2e.py."""
import json

import pytest
import sqlalchemy as sa

from conftest import SEED_ORDER, login, order_row, row_counts
from elife.clients.wechat import WeChatClient, refund_number
from elife.extensions import db

OK = {"errcode": 0, "errmsg": "OK"}


# -- helpers ---------------------------------------------------------------------------------

def create_payment(client, headers, n):
    return client.post("/payment/create", json={"orderNumber": n}, headers=headers)


def post_callback(client, n, body, headers=None, raw=None):
    """POST a callback as WeChat's platform does (JSON); `raw` bytes are sent as they are."""
    data = raw if raw is not None else json.dumps(body, ensure_ascii=False).encode()
    return client.post(f"/payment/callback/{n}", data=data,
                       headers={"Content-Type": "application/json", **(headers or {})})


def deliver(client, notice, body=None):
    """Deliver a notice from the sandbox's /wechat/_notice, as the platform would."""
    return client.post(notice["path"], headers=notice["headers"],
                       data=json.dumps(notice["body"] if body is None else body))


def paid_in_sandbox(client, headers, sandbox, n):
    """Create the trade, have the customer pay it (callback lost) and return its notice."""
    r = create_payment(client, headers, n)
    assert r.status_code == 200, r.get_json()
    r = sandbox.pay(n, notify=False)
    assert r.status_code == 200 and r.json() == {"paid": True, "notified": False}, r.text
    return sandbox.notice(n)


def notices(n):
    with db.engine.connect() as c:
        return c.execute(sa.text("SELECT * FROM payment_notices WHERE order_number = :n ORDER BY id"),
                         {"n": n}).mappings().all()


def all_notices():
    with db.engine.connect() as c:
        return c.execute(sa.text("SELECT * FROM payment_notices ORDER BY id")).mappings().all()


def log_lines(log_dir, *needles):
    text = (log_dir / "combined.log").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if all(s in line for s in needles)]


def assert_not_paid(n):
    row = order_row(n)
    assert row["payment_status"] == "unpaid"
    assert row["paid_at"] is None and row["transaction_id"] is None
    assert row["recharge_status"] == "pending" and row["recharge_at"] is None


# -- POST /payment/create --------------------------------------------------------------------

def test_create_answers_request_payment_params_and_records_the_trade(client, customer, order, sandbox, ctx):
    n = order["orderNumber"]
    assert order_row(n)["payment_created_at"] is None
    r = create_payment(client, customer, n)
    assert r.status_code == 200, r.get_json()
    data = r.get_json()
    assert data["orderNumber"] == n and data["totalFee"] == order["totalFee"]
    payment = data["payment"]
    assert set(payment) == {"appId", "timeStamp", "nonceStr", "package", "signType", "paySign"}
    assert all(isinstance(v, str) and v for v in payment.values()), payment
    assert payment["package"].startswith("prepay_id=wx")
    row = order_row(n)
    assert row["payment_created_at"] is not None
    assert row["payment_status"] == "unpaid" and row["recharge_status"] == "pending"

    # What the unified order told WeChat comes back in WeChat's notice: our amount, our
    # attach, our callback path.
    sandbox.pay(n, notify=False)
    notice = sandbox.notice(n)
    assert notice["path"] == f"/payment/callback/{n}"
    assert notice["body"]["outTradeNo"] == n
    assert notice["body"]["totalFee"] == order["totalFee"]
    assert json.loads(notice["body"]["attach"]) == {"orderNumber": n}


def test_create_twice_for_an_unpaid_order_is_the_same_trade(client, customer, order, sandbox, ctx):
    n = order["orderNumber"]
    first = create_payment(client, customer, n)
    second = create_payment(client, customer, n)
    assert first.status_code == second.status_code == 200, (first.get_json(), second.get_json())
    assert first.get_json()["payment"]["package"] == second.get_json()["payment"]["package"]
    assert order_row(n)["payment_status"] == "unpaid"
    # Still one trade: paying it once gives one paid notice for the one amount.
    notice = paid_in_sandbox(client, customer, sandbox, n)
    assert deliver(client, notice).get_json() == OK
    assert order_row(n)["payment_status"] == "paid"


def test_create_for_another_users_order_is_404_and_changes_nothing(client, customer, order, sandbox, ctx):
    n = order["orderNumber"]
    other = login(client, "customer-b")
    before = dict(order_row(n))
    r = create_payment(client, other, n)
    assert r.status_code == 404
    assert r.get_json()["error"]["code"] == "order_not_found"
    assert dict(order_row(n)) == before
    assert sandbox.pay(n, notify=False).status_code == 404  # WeChat never heard of it


def test_create_needs_a_login(client, order, ctx):
    r = client.post("/payment/create", json={"orderNumber": order["orderNumber"]})
    assert r.status_code == 401
    assert r.get_json()["error"]["code"] == "missing_token"
    assert order_row(order["orderNumber"])["payment_created_at"] is None


def test_create_for_a_paid_order_is_409(client, customer, order, sandbox, ctx):
    n = order["orderNumber"]
    notice = paid_in_sandbox(client, customer, sandbox, n)
    assert deliver(client, notice).get_json() == OK
    before = dict(order_row(n))
    assert before["payment_status"] == "paid"
    r = create_payment(client, customer, n)
    assert r.status_code == 409
    assert r.get_json()["error"]["code"] == "order_already_paid"
    assert dict(order_row(n)) == before


def test_create_for_an_order_paid_at_wechat_but_not_yet_here_is_409(client, customer, order, sandbox, ctx,
                                                                      log_dir):
    """The customer paid; the notice is late or lost. Asking to pay again is refused as
    WeChat refuses it (ORDERPAID), so the mini-program says "paid", not "try again"."""
    n = order["orderNumber"]
    paid_in_sandbox(client, customer, sandbox, n)  # paid at WeChat, notice held back
    r = create_payment(client, customer, n)
    assert r.status_code == 409, r.get_json()
    assert r.get_json()["error"]["code"] == "order_already_paid"
    assert order_row(n)["payment_status"] == "unpaid"  # believed only through the notice or the sweep
    assert log_lines(log_dir, "event=paid_before_notice", f"order={n}")


def test_create_when_wechat_is_down_is_502_and_the_order_unchanged(client, customer, order, sandbox, ctx):
    n = order["orderNumber"]
    sandbox.wechat_down("unifiedorder")
    before = dict(order_row(n))
    r = create_payment(client, customer, n)
    assert r.status_code == 502
    assert r.get_json()["error"]["code"] == "wechat_unavailable"
    assert dict(order_row(n)) == before
    assert before["payment_created_at"] is None
    # Up again: it works, so the 502 was WeChat's and not ours.
    sandbox.wechat_down()
    assert create_payment(client, customer, n).status_code == 200
    assert order_row(n)["payment_created_at"] is not None


@pytest.mark.parametrize("raw, status, codes", [
    (b"{not json", 400, {"malformed_json"}),
    (b"", 400, {"missing_body"}),
    (b"\xff\xfe\x00", 400, {"malformed_json"}),
    (b"[1, 2]", 400, {"body_not_object"}),
    (b'"ORD20250118000000000000"', 400, {"body_not_object"}),
    (b"{}", 400, {"missing_field"}),
    (b'{"orderNumber": null}', 400, {"missing_field"}),
    (b'{"orderNumber": ""}', 400, {"missing_field"}),
    (b'{"orderNumber": "   "}', 400, {"missing_field"}),
    (b'{"orderNumber": 2025011800000000}', 400, {"invalid_field"}),
    (b'{"orderNumber": ["ORD1"]}', 400, {"invalid_field"}),
    (b'{"orderNumber": {"$ne": null}}', 400, {"invalid_field"}),
    (b'{"orderNumber": true}', 400, {"invalid_field"}),
    (b'{"orderNumber": "ORD1"}', 404, {"order_not_found"}),
    (b'{"orderNumber": "../orders"}', 404, {"order_not_found"}),
    (b'{"orderNumber": "ORD1\' OR \'1\'=\'1"}', 404, {"order_not_found"}),
    (b'{"orderNumber": "ORD\\u0000123456"}', 400, {"invalid_field"}),
    (('{"orderNumber": "ORD' + "9" * 40 + '"}').encode(), 400, {"invalid_field"}),
    ('{"orderNumber": "ORD２０２５０１１８"}'.encode(), 404, {"order_not_found"}),
])
def test_create_rejects_bad_bodies_with_json_4xx(client, customer, order, sandbox, ctx, raw, status, codes):
    before = row_counts(), dict(order_row(order["orderNumber"]))
    r = client.post("/payment/create", data=raw, content_type="application/json", headers=customer)
    assert r.status_code == status, r.data
    assert r.get_json()["error"]["code"] in codes
    assert (row_counts(), dict(order_row(order["orderNumber"]))) == before


# -- the seed's functional tests 2 and 3 -----------------------------------------------------

def test_seed_test_2_amount_mismatch(client, order, sandbox, ctx, log_dir):
    """Seed guide, 测试2: 支付金额验证, the body exactly as written, to an existing order."""
    n, fee = order["orderNumber"], order["totalFee"]
    assert fee != 999999
    raw = b"""{
    "returnCode": "SUCCESS",
    "resultCode": "SUCCESS",
    "totalFee": 999999,
    "transactionId": "WX123456789"
  }"""
    r = client.post(f"/payment/callback/{n}", data=raw, content_type="application/json")
    assert r.status_code == 200
    assert r.get_json() == OK  # 预期: 日志记录错误但返回 {errcode:0}

    # grep "支付金额不匹配" logs/combined.log
    lines = log_lines(log_dir, "支付金额不匹配", f"order={n}")
    assert lines, "the seed's grep finds nothing"
    assert any("event=amount_mismatch" in l and f"expected={fee}" in l and "received=999999" in l
               for l in lines), lines

    assert_not_paid(n)
    row = order_row(n)
    assert row["anomaly_reason"] == "amount_mismatch"  # the gravest failure names the flag
    details = row["anomaly_details"]
    assert "amount_mismatch" in details and str(fee) in details and "999999" in details

    [notice] = notices(n)
    assert notice["body"] == raw.decode()
    assert notice["decision"] == "rejected"
    assert "amount_mismatch" in notice["detail"]
    assert sandbox.log() == []


def test_seed_test_3_attach_mismatch(client, order, sandbox, ctx, log_dir):
    """Seed guide, 测试3: attach字段验证, the body exactly as written, to an existing order."""
    n = order["orderNumber"]
    raw = b"""{
    "returnCode": "SUCCESS",
    "resultCode": "SUCCESS",
    "totalFee": 1000,
    "attach": "{\\"orderNumber\\":\\"ORD999999\\"}"
  }"""
    assert json.loads(raw)["attach"] == '{"orderNumber":"ORD999999"}'
    r = client.post(f"/payment/callback/{n}", data=raw, content_type="application/json")
    assert r.status_code == 200
    assert r.get_json() == OK

    # grep "attach中的订单号与URL参数不一致" logs/combined.log
    lines = log_lines(log_dir, "attach中的订单号与URL参数不一致", f"order={n}")
    assert any("event=attach_mismatch" in l and f"expected={n}" in l and "received=ORD999999" in l
               for l in lines), lines

    assert_not_paid(n)
    row = order_row(n)
    assert row["anomaly_reason"] == "amount_mismatch"  # 1000 fen is not this order's price either
    details = row["anomaly_details"]
    assert "attach_mismatch" in details and "ORD999999" in details and n in details

    [notice] = notices(n)
    assert notice["body"] == raw.decode() and notice["decision"] == "rejected"
    assert "attach_mismatch" in notice["detail"]
    assert sandbox.log() == []


# -- authenticity ----------------------------------------------------------------------------

def forged_notice(n, fee):
    """Everything a genuine notice has, with the right amount, the right numbers."""
    return {
        "returnCode": "SUCCESS", "appid": "wxsandbox000000000", "mchId": "1800000000",
        "subAppid": "wxsandbox000000000", "subMchId": "1900000000", "nonceStr": "5K8264ILTKCH16CQ",
        "resultCode": "SUCCESS", "openid": "oForger", "isSubscribe": "N", "subOpenid": "oForger",
        "subIsSubscribe": "N", "tradeType": "JSAPI", "bankType": "OTHERS", "totalFee": fee,
        "feeType": "CNY", "cashFee": fee, "transactionId": "4200000000000000000000000001",
        "outTradeNo": n, "timeEnd": "20250118101010",
        "attach": json.dumps({"orderNumber": n}, separators=(",", ":")),
    }


PLATFORM = {"X-WX-SOURCE": "wxpay_callback", "User-Agent": "wxcloudrun-pay-callback"}


def test_forged_callback_for_a_trade_wechat_never_saw_paid_is_not_paid(client, customer, order, sandbox, ctx):
    n, fee = order["orderNumber"], order["totalFee"]
    assert create_payment(client, customer, n).status_code == 200  # the trade exists, NOTPAY
    r = post_callback(client, n, forged_notice(n, fee), headers=PLATFORM)
    assert r.status_code == 200 and r.get_json() == OK
    assert_not_paid(n)
    assert [x["decision"] for x in notices(n)] == ["unconfirmed"]
    assert sandbox.log() == []
    # The same body once WeChat has the trade paid is believed: the check is the query.
    sandbox.pay(n, notify=False)
    r = post_callback(client, n, {**forged_notice(n, fee),
                                  "transactionId": sandbox.notice(n)["body"]["transactionId"]},
                      headers=PLATFORM)
    assert r.get_json() == OK
    assert order_row(n)["payment_status"] == "paid"


def test_forged_callback_for_an_order_without_a_trade_is_not_paid(client, order, sandbox, ctx):
    n, fee = order["orderNumber"], order["totalFee"]
    r = post_callback(client, n, forged_notice(n, fee), headers=PLATFORM)
    assert r.status_code == 200 and r.get_json() == OK
    assert_not_paid(n)
    assert [x["decision"] for x in notices(n)] == ["unconfirmed"]
    assert sandbox.log() == []


def test_order_query_amount_is_checked_too(client, customer, order, sandbox, ctx, log_dir):
    """A notice that matches our stored total while WeChat's paid trade is for another amount
    (here: the stored total changed after the trade was made) is not believed."""
    n, fee = order["orderNumber"], order["totalFee"]
    notice = paid_in_sandbox(client, customer, sandbox, n)
    with db.engine.begin() as c:
        c.execute(sa.text("UPDATE orders SET total_fee = :f WHERE order_number = :n"), {"f": fee + 1, "n": n})
    r = deliver(client, notice, {**notice["body"], "totalFee": fee + 1, "cashFee": fee + 1})
    assert r.status_code == 200 and r.get_json() == OK
    assert_not_paid(n)
    row = order_row(n)
    assert row["anomaly_reason"] == "amount_mismatch" and "order_query" in row["anomaly_details"]
    assert log_lines(log_dir, "event=amount_mismatch", f"order={n}", f"expected={fee + 1}", f"received={fee}")
    assert sandbox.log() == []


def test_genuine_notice_pays_once_and_recharges(client, customer, order, sandbox, ctx, log_dir):
    """The control for the tests below: the unaltered notice does pay."""
    n = order["orderNumber"]
    notice = paid_in_sandbox(client, customer, sandbox, n)
    first, second = deliver(client, notice), deliver(client, notice)
    assert first.get_json() == second.get_json() == OK
    row = order_row(n)
    assert row["payment_status"] == "paid" and row["recharge_status"] == "success"
    assert row["transaction_id"] == notice["body"]["transactionId"]
    assert row["anomaly_reason"] is None
    assert [x["decision"] for x in notices(n)] == ["paid", "duplicate"]
    assert json.loads(notices(n)[0]["headers"])["X-WX-SOURCE"] == "wxpay_callback"
    assert len(sandbox.submits_for(n)) == 1
    assert log_lines(log_dir, "event=duplicate_notice", f"order={n}")


@pytest.mark.parametrize("fee", [
    "RIGHT_AS_STRING", "RIGHT_AS_FLOAT", "RIGHT_NEGATIVE", 0, -1, 1, 10**20, 10**400,
    True, False, None, "", "abc", [1050], {"fee": 1050}, 1e308,
], ids=lambda f: repr(f)[:20])
def test_bad_total_fee_is_never_paid(client, customer, order, sandbox, ctx, fee):
    """The trade is genuinely paid in WeChat, so only the amount check stands in the way."""
    n, right = order["orderNumber"], order["totalFee"]
    fee = {"RIGHT_AS_STRING": str(right), "RIGHT_AS_FLOAT": float(right),
           "RIGHT_NEGATIVE": -right}.get(fee, fee) if isinstance(fee, str) else fee
    notice = paid_in_sandbox(client, customer, sandbox, n)
    r = deliver(client, notice, {**notice["body"], "totalFee": fee})
    assert r.status_code == 200 and r.get_json() == OK
    assert_not_paid(n)
    row = order_row(n)
    assert row["anomaly_reason"] == "amount_mismatch"
    assert "amount_mismatch" in row["anomaly_details"] and f'"expected": {right}' in row["anomaly_details"]
    assert [x["decision"] for x in notices(n)] == ["rejected"]
    assert sandbox.log() == []


def test_total_fee_as_a_json_float_literal_is_not_paid(client, customer, order, sandbox, ctx):
    n, right = order["orderNumber"], order["totalFee"]
    notice = paid_in_sandbox(client, customer, sandbox, n)
    raw = json.dumps(notice["body"]).replace(f'"totalFee": {right}', f'"totalFee": {right}.0')
    assert f'"totalFee": {right}.0' in raw
    r = post_callback(client, n, None, headers=notice["headers"], raw=raw.encode())
    assert r.status_code == 200 and r.get_json() == OK
    assert_not_paid(n)


@pytest.mark.parametrize("field", ["resultCode", "totalFee", "outTradeNo", "attach"])
def test_a_notice_missing_a_field_is_not_paid(client, customer, order, sandbox, ctx, field):
    n = order["orderNumber"]
    notice = paid_in_sandbox(client, customer, sandbox, n)
    body = {k: v for k, v in notice["body"].items() if k != field}
    r = deliver(client, notice, body)
    assert r.status_code == 200 and r.get_json() == OK
    assert_not_paid(n)
    assert order_row(n)["anomaly_reason"]
    assert [x["decision"] for x in notices(n)] == ["rejected"]


@pytest.mark.parametrize("change", [
    {"returnCode": "FAIL"}, {"resultCode": "FAIL"}, {"returnCode": "success"},
    {"attach": "not json"}, {"attach": '{"orderNumber": 1}'}, {"attach": {"orderNumber": "SELF"}},
    {"outTradeNo": None}, {"outTradeNo": "SELF "},
])
def test_a_notice_with_a_wrong_field_is_not_paid(client, customer, order, sandbox, ctx, change):
    n = order["orderNumber"]
    notice = paid_in_sandbox(client, customer, sandbox, n)
    change = json.loads(json.dumps(change).replace("SELF", n))
    r = deliver(client, notice, {**notice["body"], **change})
    assert r.status_code == 200 and r.get_json() == OK
    assert_not_paid(n)
    assert order_row(n)["anomaly_reason"]


def test_a_notice_without_return_code_is_not_a_notice(client, customer, order, sandbox, ctx):
    n = order["orderNumber"]
    notice = paid_in_sandbox(client, customer, sandbox, n)
    body = {k: v for k, v in notice["body"].items() if k != "returnCode"}
    r = deliver(client, notice, body)
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "not_a_notice"
    assert_not_paid(n)
    assert [x["decision"] for x in notices(n)] == ["not_a_notice"]


def test_another_orders_genuine_notice_pays_neither(client, customer, order, sandbox, ctx):
    a = order["orderNumber"]
    r = client.post("/orders", json=SEED_ORDER, headers=customer)
    b = r.get_json()["orderNumber"]
    notice_a = paid_in_sandbox(client, customer, sandbox, a)
    notice_b = paid_in_sandbox(client, customer, sandbox, b)
    assert notice_a["body"]["totalFee"] == notice_b["body"]["totalFee"]  # same product, same price
    # B's genuine notice delivered to A's URL; and only B's outTradeNo put into A's notice.
    r1 = post_callback(client, a, notice_b["body"], headers=notice_b["headers"])
    r2 = post_callback(client, a, {**notice_a["body"], "outTradeNo": b}, headers=notice_a["headers"])
    assert r1.get_json() == r2.get_json() == OK
    assert_not_paid(a)
    assert_not_paid(b)
    assert "out_trade_no_mismatch" in order_row(a)["anomaly_details"]
    assert order_row(b)["anomaly_reason"] is None
    assert sandbox.log() == []


@pytest.mark.parametrize("raw", [
    b"not json", b"", b"\xff\xfe\x00\x01", b"[]", b"[1, 2, 3]", b"null", b"123", b'"SUCCESS"',
    b"<xml><return_code><![CDATA[SUCCESS]]></return_code></xml>",
    b'{"returnCode": "SUCCESS", ', b"{'returnCode': 'SUCCESS'}", b"{}",
    b"[" * 50000, b'{"a":' * 10000,
    b"\xff" * 60000, b"x" * (64 * 1024),
], ids=lambda r: repr(r[:24]) + (f"...{len(r)}" if len(r) > 24 else ""))
def test_garbage_gets_a_4xx_and_is_recorded(client, order, sandbox, ctx, raw):
    n = order["orderNumber"]
    before = dict(order_row(n))
    r = post_callback(client, n, None, raw=raw)
    assert 400 <= r.status_code < 500, (r.status_code, r.data[:200])
    assert r.get_json()["error"]["code"]
    assert dict(order_row(n)) == before
    [notice] = notices(n)
    assert notice["decision"] in ("malformed", "not_a_notice")
    assert notice["body"] is not None
    if len(raw) < 1000:
        assert notice["body"] == raw.decode("utf-8", "replace")


def test_a_genuine_notice_as_a_json_array_is_not_paid(client, customer, order, sandbox, ctx):
    n = order["orderNumber"]
    notice = paid_in_sandbox(client, customer, sandbox, n)
    r = deliver(client, notice, [notice["body"]])
    assert r.status_code == 400
    assert_not_paid(n)


@pytest.mark.parametrize("url_number", [
    "ORD999999", "ORD1234567890", "nope", "ORD" + "1" * 200, "ORD💥", "ORD1%0Aevent=payment_confirmed",
    "%27%20OR%201%3D1", "ORD1%00",
])
def test_a_notice_for_no_order_of_ours_changes_nothing(client, order, sandbox, ctx, url_number):
    before = row_counts()
    body = forged_notice(url_number, order["totalFee"])
    r = client.post(f"/payment/callback/{url_number}", data=json.dumps(body),
                    content_type="application/json", headers=PLATFORM)
    assert r.status_code < 500, r.data
    assert r.get_json() == OK
    after = row_counts()
    assert after["payment_notices"] == before["payment_notices"] + 1
    assert {k: v for k, v in after.items() if k != "payment_notices"} == \
        {k: v for k, v in before.items() if k != "payment_notices"}
    assert all_notices()[-1]["decision"] == "unknown_order"
    assert_not_paid(order["orderNumber"])


def test_a_notice_cannot_write_lines_into_the_log(client, order, sandbox, ctx, log_dir):
    """The seed's runbook greps combined.log; a caller must not be able to add lines to it."""
    n = order["orderNumber"]
    fake = f"2025-01-18T10:00:00.000Z INFO elife.payments event=payment_confirmed order={n} FORGED"
    body = {**forged_notice(n, order["totalFee"]), "outTradeNo": "X\n" + fake, "attach": "\r\n" + fake}
    r = post_callback(client, n, body, headers=PLATFORM)
    assert r.get_json() == OK
    r = client.post("/payment/callback/ORD1%0A" + fake.replace(" ", "%20"), data=json.dumps(body),
                    content_type="application/json")
    assert r.status_code < 500
    text = (log_dir / "combined.log").read_text(encoding="utf-8")
    assert not [l for l in text.splitlines() if l.startswith("2025-01-18T10:00:00.000Z")]
    assert_not_paid(n)


def test_every_notice_is_recorded_with_its_body_and_decision(client, customer, order, sandbox, ctx):
    n = order["orderNumber"]
    notice = paid_in_sandbox(client, customer, sandbox, n)
    sent = [
        b"garbage",
        b"[1]",
        json.dumps({**notice["body"], "totalFee": 1}).encode(),
        json.dumps(notice["body"]).encode(),
        json.dumps(notice["body"]).encode(),
    ]
    for raw in sent:
        r = client.post(notice["path"], data=raw, headers=notice["headers"])
        assert r.status_code < 500
    rows = notices(n)
    assert [x["body"] for x in rows] == [raw.decode() for raw in sent]
    assert [x["decision"] for x in rows] == ["malformed", "not_a_notice", "rejected", "paid", "duplicate"]
    assert all(x["received_at"] is not None for x in rows)
    assert all(json.loads(x["headers"])["X-WX-SOURCE"] == "wxpay_callback" for x in rows)


def test_require_wx_source_accepts_only_platform_callbacks(make_app, client, customer, order, sandbox, ctx):
    n = order["orderNumber"]
    notice = paid_in_sandbox(client, customer, sandbox, n)
    strict = make_app(REQUIRE_WX_SOURCE="true").test_client()
    headers = {k: v for k, v in notice["headers"].items() if k != "X-WX-SOURCE"}
    r = strict.post(notice["path"], headers=headers, data=json.dumps(notice["body"]))
    assert r.status_code == 403 and r.get_json()["error"]["code"] == "not_from_platform"
    assert_not_paid(n)
    r = strict.post(notice["path"], headers=notice["headers"], data=json.dumps(notice["body"]))
    assert r.get_json() == OK
    assert order_row(n)["payment_status"] == "paid"


# -- WeChat's order query down ---------------------------------------------------------------

def test_order_query_down_means_retry_later_then_the_retry_pays(client, customer, order, sandbox, ctx):
    n = order["orderNumber"]
    notice = paid_in_sandbox(client, customer, sandbox, n)
    sandbox.wechat_down("queryorder")
    before = dict(order_row(n))
    r = deliver(client, notice)
    assert r.status_code < 500
    assert r.get_json()["errcode"] != 0  # WeChat retries
    assert dict(order_row(n)) == before
    assert [x["decision"] for x in notices(n)] == ["query_failed"]
    assert sandbox.log() == []

    sandbox.wechat_down()  # back up; WeChat delivers the same notice again
    r = deliver(client, notice)
    assert r.status_code == 200 and r.get_json() == OK
    row = order_row(n)
    assert row["payment_status"] == "paid" and row["paid_at"] is not None
    assert row["transaction_id"] == notice["body"]["transactionId"]
    assert row["recharge_status"] == "success"
    assert [e["requestId"] for e in sandbox.log()] == [n]
    assert [x["decision"] for x in notices(n)] == ["query_failed", "paid"]


# -- refund ----------------------------------------------------------------------------------

def test_refund_twice_is_one_refund(app, client, customer, order, sandbox, ctx):
    n, fee = order["orderNumber"], order["totalFee"]
    paid_in_sandbox(client, customer, sandbox, n)
    wx = WeChatClient(app.config["SETTINGS"])
    first = wx.refund(order_number=n, total_fee=fee, reason="top-up failed")
    second = wx.refund(order_number=n, total_fee=fee, reason="top-up failed")
    assert first.refund_id == second.refund_id
    [refund] = sandbox.refunds()
    assert refund["out_trade_no"] == n
    assert refund["out_refund_no"] == refund_number(n)
    assert refund["refund_fee"] == fee
    assert refund["requests"] == 2


def test_oversized_platform_headers_are_recorded_not_a_500(client, customer, order, sandbox, ctx):
    """payment_notices.headers is TEXT: six 8 KB headers of non-ASCII must not break the insert."""
    n = order["orderNumber"]
    notice = paid_in_sandbox(client, customer, sandbox, n)
    big = {h: "é" * 8000 for h in ("X-WX-OPENID", "X-WX-APPID", "X-WX-ENV", "X-Forwarded-For", "User-Agent")}
    r = client.post(notice["path"], data=json.dumps(notice["body"]), headers={**notice["headers"], **big})
    assert r.status_code == 200 and r.get_json() == OK
    assert order_row(n)["payment_status"] == "paid"
    [row] = notices(n)
    assert json.loads(row["headers"])["X-WX-SOURCE"] == "wxpay_callback"
