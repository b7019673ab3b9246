"""Issue 26's "Done when", as a new user would walk it (README, "For the mini-program's
developers"): the three templates configured with the command, a consent posted as the
mini-program would, orders paid in the sandbox and topped up by the service under
gunicorn (its pool), and each message as WeChat received it."""
import time

import pytest
import requests
import sqlalchemy as sa

from conftest import wait_settled
from elife.extensions import db

pytestmark = pytest.mark.e2e

RECHARGED = "tmplRecharged000000000000000000000000000001"
FAILED = "tmplFailedRefunded0000000000000000000000001"
REFUNDED = "tmplRefunded00000000000000000000000000000001"
OK = {"errcode": 0, "errmsg": "OK"}


def wait_messages(sandbox, template, count=1, seconds=10):
    deadline = time.monotonic() + seconds
    while True:
        got = [m for m in requests.get(f"{sandbox.url}/wechat/_messages", timeout=5).json()
               if m["template_id"] == template]
        if len(got) >= count:
            return got
        assert time.monotonic() < deadline, f"no {template} message within {seconds}s"
        time.sleep(0.05)


def outbox_status(n, kind, seconds=10):
    deadline = time.monotonic() + seconds
    while True:
        with db.engine.connect() as c:
            status = c.execute(sa.text("SELECT status FROM notifications WHERE order_number = :n AND kind = :k"),
                               {"n": n, "k": kind}).scalar()
        if status not in (None, "pending", "sending") or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def test_the_customer_hears_back_as_a_new_user_would_set_it_up(app, live, sandbox, ctx):
    runner = app.test_cli_runner()
    for args in (["recharged", RECHARGED, "--field", "phone_number1=phone", "--field", "thing2=product",
                  "--field", "amount3=amount", "--field", "time4=time", "--field", "character_string5=order"],
                 ["failed_refunded", FAILED, "--field", "phone_number1=phone", "--field", "amount2=amount",
                  "--field", "thing3=reason"],
                 ["refunded", REFUNDED, "--field", "amount1=amount", "--field", "time2=time",
                  "--field", "phrase3=reason"]):
        r = runner.invoke(args=["elife", "notify", "template", "set", *args])
        assert r.exit_code == 0, r.output

    headers = live.login("hears-back")
    asked = requests.get(f"{live.url}/notifications", headers=headers, timeout=10).json()["templates"]
    tmpl_ids = [t["templateId"] for t in asked]  # what wx.requestSubscribeMessage is called with
    assert sorted(tmpl_ids) == sorted([RECHARGED, FAILED, REFUNDED])
    # The customer taps "accept" for all three: the mini-program posts what it was given.
    r = requests.post(f"{live.url}/notifications/consent", headers=headers, timeout=10,
                      json={"results": {t: "accept" for t in tmpl_ids}})
    assert r.status_code == 200 and {t["credits"] for t in r.json()["templates"]} == {1}

    # 1. Paid: topped up, and told so, every field as WeChat takes it.
    n = live.new_paid_ready_order(headers, phone="88120001")
    assert sandbox.pay(n).json() == OK
    assert wait_settled(n)["recharge_status"] == "success"
    [m] = wait_messages(sandbox, RECHARGED)
    assert m["via"] == "open-api" and m["touser"].startswith("o")
    assert {k: v["value"] for k, v in m["data"].items()} == {
        "phone_number1": "+976-88****01", "thing2": "Unitel voice credit…", "amount3": "10.50元",
        "time4": m["data"]["time4"]["value"], "character_string5": n}
    assert outbox_status(n, "recharged") == "sent"

    # 2. The operator refuses: failed_refunded at once, refunded only once WeChat confirms.
    sandbox.refund_mode("processing")
    sandbox.mode("fail", msisdn="88120002")
    n2 = live.new_paid_ready_order(headers, phone="88120002")
    assert sandbox.pay(n2).json() == OK
    wait_settled(n2, refunding=True)
    [f] = wait_messages(sandbox, FAILED)
    assert f["data"]["thing3"] == {"value": "号码未开通服务，款项将原路退回"}
    assert outbox_status(n2, "refunded", seconds=0) is None  # accepted is not refunded
    r = sandbox.refund_settle(n2, "SUCCESS")  # WeChat refunds; its notice goes to gunicorn
    assert r.json() == OK
    [rf] = wait_messages(sandbox, REFUNDED)
    assert rf["data"]["phrase3"] == {"value": "已退款"} and rf["data"]["amount1"] == {"value": "10.50元"}

    # 3. No consent left for `recharged`: the top-up lands all the same, the message is skipped.
    n3 = live.new_paid_ready_order(headers, phone="88120003")
    assert sandbox.pay(n3).json() == OK
    assert wait_settled(n3)["recharge_status"] == "success"
    assert outbox_status(n3, "recharged") == "skipped"
    assert len(wait_messages(sandbox, RECHARGED)) == 1
    assert live.get_order(headers, n3)["rechargeStatus"] == "success"
