"""Refunds tracked until the money is back (issue 15, part 1): an accepted refund is
`refunding`; only WeChat's refund query -- asked at once, on the refund notice, or by the
sweep -- makes it `refunded`; REFUNDCLOSE, CHANGE or a refused request leave it `paid`,
flagged `refund_failed` with WeChat's words, for a person; a notice on the wrong path,
or one the refund query does not confirm, changes nothing.

Real parts: the app in-process or under gunicorn (the sandbox delivers its notices
there), the test database, the sandbox over HTTP."""
import json
from datetime import timedelta

import sqlalchemy as sa

from conftest import login, order_row, row_counts, wait_settled
from elife import services
from elife.extensions import db
from elife.fulfil import sweep
from elife.models import Order, PaymentNotice
from elife.timeutil import utcnow
from test_recharge import kinds, pay_through_callback, refunds_for

OK = {"errcode": 0, "errmsg": "OK"}
RETRY = {"errcode": 1, "errmsg": "try again later"}
ADMIN = {"Authorization": "Bearer test-admin-token"}
JSON = {"Accept": "application/json"}
WX = {"Content-Type": "application/json", "X-WX-SOURCE": "wxpay_callback"}


def decisions(n):
    rows = db.session.execute(sa.select(PaymentNotice.decision).where(PaymentNotice.order_number == n)
                              .order_by(PaymentNotice.id)).scalars().all()
    db.session.commit()
    return rows


def age_refund(n, by=timedelta(minutes=2)):
    """As if WeChat accepted the refund `by` ago (longer than SWEEP_GRACE_SECONDS)."""
    db.session.execute(sa.update(Order).where(Order.order_number == n)
                       .values(refund_requested_at=utcnow() - by))
    db.session.commit()


def refund_notice(n, status="SUCCESS", fee=1050, **changes):
    """A refund notice shaped as WeChat's (Cloud Hosting, camelCase) -- made up here."""
    body = {"returnCode": "SUCCESS", "appid": "wxsandbox000000000", "mchId": "1800000000",
            "nonceStr": "f0rged", "transactionId": "4200000000000000000000000001", "outTradeNo": n,
            "refundId": "50300000000000000000000001", "outRefundNo": "R" + n, "totalFee": fee,
            "refundFee": fee, "settlementRefundFee": fee, "refundStatus": status,
            "successTime": "2026-01-18 10:00:00", "refundRecvAccout": "支付用户零钱"}
    body.update(changes)
    return body


def failed_and_refunding(client, sandbox, customer, phone):
    """A paid order the operator refused, its refund accepted by WeChat and PROCESSING."""
    sandbox.refund_mode("processing")
    n = pay_through_callback(client, sandbox, customer, phone, "fail")
    row = order_row(n)
    assert (row["payment_status"], row["recharge_status"], row["anomaly_reason"]) == ("refunding", "failed", None)
    assert row["refund_requested_at"] is not None and row["refunded_at"] is None
    return n


# -- the lifecycle ----------------------------------------------------------------------------

def test_a_refund_accepted_is_refunding_until_the_notice_is_confirmed(live, sandbox, ctx):
    headers = live.login("refund-notice")
    sandbox.refund_mode("processing")
    n = live.new_paid_ready_order(headers, phone="89300001")
    sandbox.mode("fail", msisdn="89300001")
    assert sandbox.pay(n).json() == OK  # paid, the operator refuses, the refund is asked for

    wait_settled(n, refunding=True)  # the top-up, its refusal and the refund request run after WeChat's answer
    seen = live.get_order(headers, n)
    assert (seen["paymentStatus"], seen["rechargeStatus"], seen["refundedAt"]) == ("refunding", "failed", None)
    [refund] = refunds_for(sandbox, n)
    assert (refund["status"], refund["requests"], refund["refund_fee"]) == ("PROCESSING", 1, seen["totalFee"])
    assert refund["path"] == f"/payment/refund-callback/{n}", "the request names the notice's path"

    r = sandbox.refund_settle(n, "SUCCESS")  # WeChat refunds, and delivers the notice to gunicorn
    assert (r.status_code, r.json()) == (200, OK)

    seen = live.get_order(headers, n)
    assert (seen["paymentStatus"], seen["rechargeStatus"]) == ("refunded", "failed")
    assert seen["refundedAt"] is not None
    assert decisions(n) == ["paid", "refund_confirmed"]
    # Believed on the refund query's word: PROCESSING when asked at once, SUCCESS on the notice.
    assert kinds(n) == [("submit", "failed"), ("refund", "success"), ("refund_query", "unknown"),
                        ("refund_query", "success")]
    assert order_row(n)["anomaly_reason"] is None


def test_a_refund_whose_notice_is_lost_is_confirmed_by_the_sweeps_query(client, sandbox, customer, ctx):
    n = failed_and_refunding(client, sandbox, customer, "89300002")
    assert sweep.run(services.current()).by_selection["refunding"] == 0, "accepted just now: within SWEEP_GRACE_SECONDS"
    age_refund(n)
    s = sweep.run(services.current())  # WeChat still PROCESSING: nothing changes
    assert s.by_selection["refunding"] == 1 and order_row(n)["payment_status"] == "refunding"

    assert sandbox.refund_settle(n, "SUCCESS", notify=False).json() == {"settled": "SUCCESS", "notified": False}
    s = sweep.run(services.current())
    row = order_row(n)
    assert (row["payment_status"], row["recharge_status"]) == ("refunded", "failed")
    assert s.by_selection["refunding"] == 1 and s.settled == 1
    [refund] = refunds_for(sandbox, n)
    assert refund["requests"] == 1, "asked, never refunded again"
    assert sweep.run(services.current()).by_selection["refunding"] == 0
    assert kinds(n)[-1] == ("refund_query", "success")


def test_a_closed_refund_is_flagged_and_refunded_again_only_by_a_person(live, client, sandbox, ctx):
    headers = live.login("refund-closed")
    sandbox.refund_mode("processing")
    n = live.new_paid_ready_order(headers, phone="89300003")
    sandbox.mode("fail", msisdn="89300003")
    assert sandbox.pay(n).json() == OK
    wait_settled(n, refunding=True)  # the refund was asked for after WeChat's answer
    assert sandbox.refund_settle(n, "REFUNDCLOSE").json() == OK  # the notice says it closed

    row = order_row(n)
    assert (row["payment_status"], row["recharge_status"], row["anomaly_reason"]) == ("paid", "failed", "refund_failed")
    assert "refund REFUNDCLOSE (WeChat's refund query)" in row["anomaly_details"]
    assert decisions(n)[-1] == "refund_failed"
    assert live.get_order(headers, n)["paymentStatus"] == "paid"

    age_refund(n)
    sweep.run(services.current())  # a refund WeChat closed is not sent again on its own
    [refund] = refunds_for(sandbox, n)
    assert (refund["status"], refund["requests"]) == ("REFUNDCLOSE", 1)

    page = client.get(f"/admin/orders/{n}", headers=ADMIN).get_data(as_text=True)
    assert 'id="refund-again"' in page and f"R{n}" in page
    sandbox.refund_mode("success")
    r = client.post(f"/admin/orders/{n}/refund", data={"name": "Bat", "note": "card replaced"}, headers=ADMIN)
    assert r.status_code == 303
    row = order_row(n)
    assert (row["payment_status"], row["anomaly_reason"]) == ("refunded", None)
    [refund] = refunds_for(sandbox, n)
    assert (refund["out_refund_no"], refund["status"], refund["requests"]) == (f"R{n}", "SUCCESS", 2)


def test_a_refused_refund_request_is_flagged_with_wechats_words_and_waits_for_a_person(
        client, sandbox, customer, ctx):
    sandbox.refund_mode("fail")  # the merchant balance is short
    n = pay_through_callback(client, sandbox, customer, "89300004", "fail")
    row = order_row(n)
    assert (row["payment_status"], row["recharge_status"], row["anomaly_reason"]) == ("paid", "failed", "refund_failed")
    assert "refund refused by WeChat: NOTENOUGH: 基本账户余额不足" in row["anomaly_details"]
    assert kinds(n) == [("submit", "failed"), ("refund", "failed")]

    sandbox.refund_mode("success")
    for _ in range(2):
        assert sweep.run(services.current()).by_selection["refund_pending"] == 0
    assert kinds(n) == [("submit", "failed"), ("refund", "failed")], "the sweep never asks again"

    r = client.post(f"/admin/orders/{n}/resolve", headers={**ADMIN, **JSON},
                    data={"name": "Bat", "note": "refunded by hand in the merchant platform", "reason": "refund_failed"})
    assert r.status_code == 303
    sweep.run(services.current())
    row = order_row(n)
    assert (row["payment_status"], row["anomaly_reason"]) == ("paid", None)
    assert refunds_for(sandbox, n) == [] and kinds(n) == [("submit", "failed"), ("refund", "failed")]


def test_wechat_not_reached_is_retried_by_the_sweep(client, sandbox, customer, ctx):
    sandbox.wechat_down("refund")
    n = pay_through_callback(client, sandbox, customer, "89300005", "fail")
    row = order_row(n)
    assert (row["payment_status"], row["anomaly_reason"], row["refund_requested_at"]) == ("paid", "refund_failed", None)
    sandbox.wechat_down()
    assert sweep.run(services.current()).by_selection["refund_pending"] == 1
    assert order_row(n)["payment_status"] == "refunded"


# -- notices that must change nothing ---------------------------------------------------------

def test_forged_refund_notices_change_nothing_on_either_path(client, sandbox, customer, ctx):
    refunding = failed_and_refunding(client, sandbox, customer, "89300006")
    sandbox.mode("success")
    done = pay_through_callback(client, sandbox, customer, "89300007", "success")
    before = {n: dict(order_row(n)) for n in (refunding, done)}
    counts = row_counts()

    cases = [  # (path, body, the decision recorded)
        (f"/payment/refund-callback/{refunding}", refund_notice(refunding), "refund_unconfirmed"),
        (f"/payment/refund-callback/{done}", refund_notice(done), "not_refunding"),
        (f"/payment/refund-callback/{refunding}", refund_notice(refunding, outRefundNo="R1"), "rejected"),
        # a refund notice sent to the payment path, and WeChat's own payment notice to the refund path
        (f"/payment/callback/{refunding}", refund_notice(refunding), "wrong_callback_path"),
        (f"/payment/callback/{done}", refund_notice(done), "wrong_callback_path"),
        (f"/payment/refund-callback/{done}", sandbox.notice(done)["body"], "wrong_callback_path"),
    ]
    for path, body, decision in cases:
        r = client.post(path, data=json.dumps(body), headers=WX)
        assert (r.status_code, r.get_json()) == (200, OK), path
        n = path.rsplit("/", 1)[1]
        assert decisions(n)[-1] == decision, (path, decisions(n))

    for n in (refunding, done):
        assert dict(order_row(n)) == before[n], "no order changed"
    after = row_counts()
    assert after["payment_notices"] == counts["payment_notices"] + len(cases), "every notice recorded"
    assert {k: v for k, v in after.items() if k not in ("payment_notices", "operator_calls")} == \
        {k: v for k, v in counts.items() if k not in ("payment_notices", "operator_calls")}
    assert [c for c in refunds_for(sandbox, done)] == []


def test_a_refund_notice_waits_for_the_refund_query(client, sandbox, customer, ctx):
    """The query cannot be asked: WeChat is told to deliver again; the retry confirms it."""
    n = failed_and_refunding(client, sandbox, customer, "89300008")
    assert sandbox.refund_settle(n, "SUCCESS", notify=False).status_code == 200
    sandbox.wechat_down("queryrefund")
    r = client.post(f"/payment/refund-callback/{n}", data=json.dumps(refund_notice(n)), headers=WX)
    assert r.get_json() == RETRY and order_row(n)["payment_status"] == "refunding"
    sandbox.wechat_down()
    r = client.post(f"/payment/refund-callback/{n}", data=json.dumps(refund_notice(n)), headers=WX)
    assert r.get_json() == OK and order_row(n)["payment_status"] == "refunded"
    assert decisions(n)[-2:] == ["query_failed", "refund_confirmed"]
    # WeChat's repeat of a notice already believed
    r = client.post(f"/payment/refund-callback/{n}", data=json.dumps(refund_notice(n)), headers=WX)
    assert r.get_json() == OK and decisions(n)[-1] == "duplicate"


def test_bad_input_on_the_refund_path_is_a_4xx_recorded_and_changes_nothing(
        make_app, client, sandbox, customer, order, ctx):
    n = order["orderNumber"]
    before, counts = dict(order_row(n)), row_counts()
    for body, status, code in ((b"{not json", 400, "malformed_json"), (b"[1, 2]", 400, "not_a_notice"),
                               (b'{"hello": "world"}', 400, "not_a_notice")):
        r = client.post(f"/payment/refund-callback/{n}", data=body, headers=WX)
        assert (r.status_code, r.get_json()["error"]["code"]) == (status, code)
    r = client.post("/payment/refund-callback/ORD-no-such", data=json.dumps(refund_notice("ORD-no-such")), headers=WX)
    assert r.get_json() == OK and decisions("ORD-no-such") == ["unknown_order"]
    strict = make_app(REQUIRE_WX_SOURCE="true").test_client()
    r = strict.post(f"/payment/refund-callback/{n}", data=json.dumps(refund_notice(n)),
                    headers={"Content-Type": "application/json"})
    assert (r.status_code, r.get_json()["error"]["code"]) == (403, "not_from_platform")
    assert dict(order_row(n)) == before
    assert row_counts()["payment_notices"] == counts["payment_notices"] + 5
    assert decisions(n) == ["malformed", "not_a_notice", "not_a_notice", "not_from_platform"]


def test_the_customer_sees_refunding_then_refunded(client, sandbox, ctx):
    customer = login(client, "refund-watcher")
    n = failed_and_refunding(client, sandbox, customer, "89300009")
    assert client.get(f"/orders/{n}", headers=customer).get_json()["paymentStatus"] == "refunding"
    sandbox.refund_settle(n, "SUCCESS", notify=False)
    r = client.post(f"/payment/refund-callback/{n}", data=json.dumps(refund_notice(n)), headers=WX)
    assert r.get_json() == OK
    o = client.get(f"/orders/{n}", headers=customer).get_json()
    assert o["paymentStatus"] == "refunded" and o["refundedAt"] is not None
