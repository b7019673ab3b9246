"""Payment (issue 4): /payment/create, the callback that cannot be forged, and the client's
refund. In-process app, a real database (SQLite file or MariaDB) and the sandbox as a real
HTTP server. The sandbox's own callback delivery goes to the gunicorn service, so here a
trade is paid with `notify: false` and its exact notice is delivered through the test
client. The gunicorn tests are in test_payment_e2e.py."""
import json

import pytest
import sqlalchemy as sa

from conftest import SEED_ORDER, login, order_row, row_counts
from elife import services
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
    # Anyone can send this body: WeChat's order query knows no payment, so it flags nothing.
    assert order_row(n)["anomaly_reason"] is None
    assert log_lines(log_dir, "event=payment_unconfirmed", f"order={n}", "checks=")

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
    assert order_row(n)["anomaly_reason"] is None  # unconfirmed by WeChat: no flag

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
    # WeChat's payment agrees with the order: the notice was wrong, not the payment. No
    # flag; the sweep's order query pays it (test_a_wrong_notice_of_a_right_payment...).
    assert order_row(n)["anomaly_reason"] is None
    assert [x["decision"] for x in notices(n)] == ["rejected"]
    assert "amount_mismatch" in notices(n)[0]["detail"]
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
    assert order_row(n)["anomaly_reason"] is None
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
    assert [x["decision"] for x in notices(n)] == ["rejected"]


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
    assert [x["decision"] for x in notices(a)] == ["rejected", "rejected"]
    assert all("out_trade_no_mismatch" in x["detail"] for x in notices(a))
    assert order_row(a)["anomaly_reason"] is None and order_row(b)["anomaly_reason"] is None
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
def test_a_notice_for_no_order_of_ours_changes_nothing(client, order, sandbox, ctx, url_number, log_dir):
    """Counted and logged, not stored: an anonymous flood of made-up order numbers fills
    no table (rate_limits gains one counter an hour, whatever the flood)."""
    before = row_counts()
    body = forged_notice(url_number, order["totalFee"])
    r = client.post(f"/payment/callback/{url_number}", data=json.dumps(body),
                    content_type="application/json", headers=PLATFORM)
    assert r.status_code < 500, r.data
    assert r.get_json() == OK
    after = row_counts()
    assert {k: v for k, v in after.items() if k != "rate_limits"} == \
        {k: v for k, v in before.items() if k != "rate_limits"}
    assert after["rate_limits"] <= before["rate_limits"] + 1
    assert log_lines(log_dir, "event=notice_unknown_order", "decision=unknown_order", "this_hour=",
                     "transactionId=4200000000000000000000000001")
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


# -- what an anonymous notice can do (issue 16, findings 5 and 6) ------------------------------

def test_an_anonymous_wrong_amount_flags_nothing_and_the_real_payment_goes_through(
        client, customer, order, sandbox, ctx, log_dir):
    """The attack: a wrong-amount POST for a victim's unpaid order flagged it
    amount_mismatch, and the flag stayed after the genuine payment."""
    n, fee = order["orderNumber"], order["totalFee"]
    assert create_payment(client, customer, n).status_code == 200  # the victim is paying
    r = post_callback(client, n, {**forged_notice(n, fee + 1), "cashFee": fee + 1})
    assert r.get_json() == OK
    assert order_row(n)["anomaly_reason"] is None and order_row(n)["anomaly_details"] is None
    assert log_lines(log_dir, "event=amount_mismatch", f"order={n}", "支付金额不匹配")  # the runbook's grep
    assert log_lines(log_dir, "event=payment_unconfirmed", f"order={n}", "trade_state=NOTPAY")
    # The victim pays: paid, recharged, nothing for a person to look at.
    sandbox.pay(n, notify=False)
    assert deliver(client, sandbox.notice(n)).get_json() == OK
    row = order_row(n)
    assert (row["payment_status"], row["recharge_status"], row["anomaly_reason"]) == ("paid", "success", None)
    assert [x["decision"] for x in notices(n)] == ["rejected", "paid"]


def test_a_payment_wechat_confirms_for_another_amount_is_flagged(client, order, sandbox, ctx, log_dir):
    """The one way a notice flags an order: WeChat's order query confirms a payment that
    disagrees with it. Never paid, never recharged."""
    n, fee = order["orderNumber"], order["totalFee"]
    sandbox.trade(n, fee + 100)
    sandbox.pay(n, notify=False)
    notice = sandbox.notice(n)
    assert notice["body"]["totalFee"] == fee + 100
    assert deliver(client, notice).get_json() == OK
    assert_not_paid(n)
    row = order_row(n)
    assert row["anomaly_reason"] == "amount_mismatch" and "order_query" in row["anomaly_details"]
    assert log_lines(log_dir, "event=amount_mismatch", f"order={n}", "source=order_query", f"received={fee + 100}")
    assert [x["decision"] for x in notices(n)] == ["rejected"]
    assert sandbox.log() == []


def test_a_wrong_notice_of_a_right_payment_is_paid_by_the_sweep(client, customer, order, sandbox, ctx):
    """The notice is not paid on (its body disagrees), nor flagged (WeChat's payment
    agrees): the sweep's order query pays the order as if that notice never came."""
    from datetime import timedelta

    from elife.fulfil import sweep
    from elife.timeutil import utcnow
    n, fee = order["orderNumber"], order["totalFee"]
    notice = paid_in_sandbox(client, customer, sandbox, n)
    assert deliver(client, notice, {**notice["body"], "totalFee": fee - 1}).get_json() == OK
    assert_not_paid(n)
    assert order_row(n)["anomaly_reason"] is None
    with db.engine.begin() as c:  # past the sweep's grace
        c.execute(sa.text("UPDATE orders SET payment_created_at = :t WHERE order_number = :n"),
                  {"t": utcnow() - timedelta(minutes=5), "n": n})
    sweep.run(services.current())
    row = order_row(n)
    assert (row["payment_status"], row["recharge_status"], row["anomaly_reason"]) == ("paid", "success", None)
    assert len(sandbox.submits_for(n)) == 1


def test_a_mismatching_notice_of_a_paid_order_changes_nothing(client, customer, order, sandbox, ctx):
    n, fee = order["orderNumber"], order["totalFee"]
    notice = paid_in_sandbox(client, customer, sandbox, n)
    assert deliver(client, notice).get_json() == OK
    before = dict(order_row(n))
    assert deliver(client, notice, {**notice["body"], "totalFee": 1}).get_json() == OK
    assert dict(order_row(n)) == before
    assert [x["decision"] for x in notices(n)] == ["paid", "rejected"]
    assert len(sandbox.submits_for(n)) == 1


def test_notices_per_order_number_are_limited(make_app, client, customer, order, sandbox, ctx, log_dir):
    """300 anonymous 60 KB notices were stored in 1.3 s. Past the limit they are refused
    before anything is stored; WeChat would deliver again later."""
    n, fee = order["orderNumber"], order["totalFee"]
    limited = make_app(LIMIT_NOTICES_PER_ORDER_PER_HOUR=3).test_client()
    big = json.dumps({**forged_notice(n, fee + 1), "pad": "x" * 60_000})
    codes = [limited.post(f"/payment/callback/{n}", data=big, content_type="application/json").status_code
             for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    r = limited.post(f"/payment/callback/{n}", data=big, content_type="application/json")
    assert r.get_json()["error"]["code"] == "rate_limited" and 1 <= int(r.headers["Retry-After"]) <= 3600
    assert len(notices(n)) == 3
    assert log_lines(log_dir, "event=notice_rate_limited", f"order={n}")
    assert order_row(n)["anomaly_reason"] is None
    # Another order has a limit of its own: the genuine notice of a paid order gets through.
    other = client.post("/orders", json=SEED_ORDER, headers=customer).get_json()["orderNumber"]
    genuine = paid_in_sandbox(client, customer, sandbox, other)
    assert limited.post(genuine["path"], headers=genuine["headers"], data=json.dumps(genuine["body"])).get_json() == OK
    assert order_row(other)["payment_status"] == "paid"


def test_a_flood_of_made_up_order_numbers_stores_nothing(client, order, sandbox, ctx, log_dir):
    before = row_counts()
    for i in range(30):
        body = json.dumps({**forged_notice(f"ORD{i:020d}", 1), "pad": "x" * 60_000})
        r = client.post(f"/payment/callback/ORD{i:020d}", data=body, content_type="application/json")
        assert r.get_json() == OK
    assert row_counts()["payment_notices"] == before["payment_notices"]
    counted = log_lines(log_dir, "event=notice_unknown_order", "this_hour=")
    assert len(counted) >= 30 and int(counted[-1].split("this_hour=")[1].split()[0]) >= 30


def test_a_deeply_nested_attach_is_decided_not_a_500(client, customer, order, sandbox, ctx):
    """json.loads raised RecursionError inside the attach parser: a 500, and the notice
    row left with no decision."""
    n = order["orderNumber"]
    notice = paid_in_sandbox(client, customer, sandbox, n)
    for attach in ("[" * 25_000 + "]" * 25_000, '{"a":' * 8_000 + "1" + "}" * 8_000):
        r = deliver(client, notice, {**notice["body"], "attach": attach})
        assert r.status_code == 200 and r.get_json() == OK
    assert [x["decision"] for x in notices(n)] == ["rejected", "rejected"]
    assert all("attach_mismatch" in x["detail"] for x in notices(n))
    assert_not_paid(n)
