"""Payment end to end (issue 4): the service under gunicorn (3 workers), the sandbox over
real HTTP delivering WeChat's callback, and the database both share."""
import threading

import pytest
import requests
import sqlalchemy as sa

from conftest import order_row, wait_settled
from elife.extensions import db

pytestmark = pytest.mark.e2e

OK = {"errcode": 0, "errmsg": "OK"}


def test_pay_through_the_sandbox(live, sandbox, ctx):
    headers = live.login()
    n = live.new_paid_ready_order(headers)
    assert live.get_order(headers, n)["paymentStatus"] == "unpaid"
    r = sandbox.pay(n)  # the customer pays; the sandbox delivers the callback to gunicorn
    assert r.status_code == 200, r.text
    assert r.json() == OK
    wait_settled(n)
    shown = live.get_order(headers, n)
    assert shown["paymentStatus"] == "paid", shown
    assert shown["rechargeStatus"] == "success", shown
    assert [e["requestId"] for e in sandbox.submits_for(n)] == [n]
    row = order_row(n)
    assert row["transaction_id"] == sandbox.notice(n)["body"]["transactionId"]
    assert row["paid_at"] is not None and row["anomaly_reason"] is None


def test_twenty_simultaneous_replays_pay_once(live, sandbox, ctx):
    headers = live.login()
    n = live.new_paid_ready_order(headers)
    assert sandbox.pay(n, notify=False).status_code == 200  # paid; the callback is ours to send
    notice = sandbox.notice(n)
    url = live.url + notice["path"]

    count = 20
    barrier = threading.Barrier(count)
    replies = [None] * count

    def deliver(i):
        with requests.Session() as s:
            barrier.wait(timeout=10)
            try:
                r = s.post(url, json=notice["body"], headers=notice["headers"], timeout=20)
                replies[i] = (r.status_code, r.json())
            except Exception as exc:  # noqa: BLE001 -- recorded and asserted below
                replies[i] = ("error", repr(exc))

    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    assert replies == [(200, OK)] * count, replies
    row = wait_settled(n)
    assert row["payment_status"] == "paid" and row["paid_at"] is not None
    assert row["recharge_status"] == "success"
    assert row["transaction_id"] == notice["body"]["transactionId"]
    assert len(sandbox.submits_for(n)) == 1, sandbox.submits_for(n)

    with db.engine.connect() as c:
        decisions = c.execute(sa.text("SELECT decision FROM payment_notices WHERE order_number = :n"),
                              {"n": n}).scalars().all()
    assert len(decisions) == count
    assert decisions.count("paid") == 1, decisions  # paid_at written once
    assert set(decisions) == {"paid", "duplicate"}, decisions
    confirmed = [l for l in (live.log_dir / "combined.log").read_text(encoding="utf-8").splitlines()
                 if "event=payment_confirmed" in l and f"order={n}" in l]
    assert len(confirmed) == 1, confirmed
    assert live.get_order(headers, n)["paymentStatus"] == "paid"
