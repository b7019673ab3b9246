"""The callback and a sweep claiming the same order at the same instant: one submit."""
import random
import threading
import time
from datetime import timedelta

import requests
import sqlalchemy as sa

from conftest import mysql_only, wait_settled
from elife import services
from elife.fulfil import sweep
from elife.extensions import db
from elife.models import Order
from elife.timeutil import utcnow


@mysql_only
def test_callback_and_sweep_race_for_one_order(live, sandbox, app):
    headers = live.login("racer")
    winners = []
    for _ in range(8):  # several rounds: whoever wins, the operator hears of it once
        sandbox.reset()
        n = live.new_paid_ready_order(headers)
        sandbox.pay(n, notify=False)
        notice = sandbox.notice(n)
        with app.app_context():
            # Paid (as if the first callback's worker died before claiming) long enough
            # ago for the sweep; the notice's redelivery and the sweep both try to claim.
            db.session.execute(sa.update(Order).where(Order.order_number == n).values(
                payment_status="paid", paid_at=utcnow() - timedelta(minutes=5), version=1))
            db.session.commit()

        start = threading.Barrier(2)
        replies, summaries = [], []

        def deliver():
            start.wait()
            replies.append(requests.post(live.url + notice["path"], json=notice["body"],
                                         headers=notice["headers"], timeout=30).json())

        def run_sweep():
            with app.app_context():
                start.wait()
                time.sleep(random.uniform(0, 0.03))  # let either side be first
                summaries.append(sweep.run(services.current()))
                db.session.remove()

        threads = [threading.Thread(target=deliver), threading.Thread(target=run_sweep)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert replies == [{"errcode": 0, "errmsg": "OK"}]
        with app.app_context():  # the callback's submit runs after its answer
            assert wait_settled(n)["recharge_status"] == "success"
        assert len(sandbox.submits_for(n)) == 1
        winners.append("sweep" if summaries[0].claimed else "callback")
    print("claims won:", {w: winners.count(w) for w in set(winners)})
