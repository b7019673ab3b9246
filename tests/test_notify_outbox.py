"""The outbox's sender against the sandbox: credits spent only when WeChat accepts, each of
WeChat's answers, retries with backoff, and two senders at once sending one message."""
import json
import threading
from datetime import timedelta

import pytest
import requests
import sqlalchemy as sa

from conftest import SEED_ORDER, login, order_row
from elife.clients.wechat_messages import MessageClient
from elife.extensions import db
from elife.models import Notification, NotificationConsent
from elife.notify import consent, outbox, templates
from elife.notify.outbox import Sender
from elife.timeutil import utcnow

RECHARGED = "tmplRecharged000000000000000000000000000001"
FIELDS = {"thing1": "product", "amount2": "amount", "time3": "time", "phone_number4": "phone",
          "character_string5": "order"}
OK = {"errcode": 0, "errmsg": "OK"}


def messages(sandbox):
    return requests.get(f"{sandbox.url}/wechat/_messages", timeout=5).json()


def message_mode(sandbox, **body):
    requests.post(f"{sandbox.url}/wechat/_messages_mode", json=body, timeout=5).raise_for_status()


def notifications(n=None):
    q = sa.select(Notification.__table__).order_by(Notification.id)
    if n:
        q = q.where(Notification.order_number == n)
    with db.engine.connect() as c:
        return [dict(r) for r in c.execute(q).mappings()]


def credits(user_id, template_id=RECHARGED):
    with db.engine.connect() as c:
        return c.execute(sa.select(NotificationConsent.credits).where(
            NotificationConsent.user_id == user_id, NotificationConsent.template_id == template_id)).scalar()


def recharged_order(client, sandbox, headers, phone="88110001"):
    r = client.post("/orders", json={**SEED_ORDER, "phoneNumber": phone}, headers=headers)
    n = r.get_json()["orderNumber"]
    assert client.post("/payment/create", json={"orderNumber": n}, headers=headers).status_code == 200
    sandbox.pay(n, notify=False)
    notice = sandbox.notice(n)
    r = client.post(notice["path"], headers=notice["headers"], data=json.dumps(notice["body"]))
    assert (r.status_code, r.get_json()) == (200, OK)
    assert order_row(n)["recharge_status"] == "success"
    return n


def earned(n, kind="recharged"):
    """The outbox row the move wrote (until fulfil/state.py's hook writes it: written here)."""
    if not notifications(n):
        row = order_row(n)
        with db.engine.begin() as c:
            outbox.earn(c, type("O", (), dict(row))(), kind)
    return notifications(n)


@pytest.fixture
def configured(ctx):
    templates.set_template("recharged", RECHARGED, FIELDS, "test")


@pytest.fixture
def sender(app):
    s = app.config["SETTINGS"]
    return Sender(s, MessageClient(s))


def user_of(n):
    return order_row(n)["user_id"]


def test_a_consent_is_credited_and_spent_once(client, sandbox, customer, configured, sender):
    n = recharged_order(client, sandbox, customer)
    consent.record(user_of(n), {RECHARGED: "accept"})
    assert credits(user_of(n)) == 1
    [row] = earned(n)
    assert sender.send_one(row["id"]) == "sent"
    assert sender.send_one(row["id"]) is None  # sent: nothing to claim
    [m] = messages(sandbox)
    assert m["template_id"] == RECHARGED and m["data"]["phone_number4"] == {"value": "+976-88****01"}
    assert m["data"]["character_string5"] == {"value": n}
    assert credits(user_of(n)) == 0
    [row] = notifications(n)
    assert (row["status"], row["attempts"], row["last_error"]) == ("sent", 1, None)
    assert json.loads(row["data"])["amount2"].endswith("元")


def test_no_credit_is_skipped_and_nothing_is_sent(client, sandbox, customer, configured, sender):
    n = recharged_order(client, sandbox, customer)
    [row] = earned(n)
    before = order_row(n)
    assert sender.send_one(row["id"]) == "skipped"
    assert messages(sandbox) == []
    assert notifications(n)[0]["status"] == "skipped" and "no consent" in notifications(n)[0]["last_error"]
    assert order_row(n) == before


def test_no_template_is_skipped(client, sandbox, customer, ctx, sender):
    n = recharged_order(client, sandbox, customer)
    [row] = earned(n)
    assert sender.send_one(row["id"]) == "skipped"
    assert "no template" in notifications(n)[0]["last_error"]


def test_43101_marks_no_consent_and_zeroes_the_credits(client, sandbox, customer, configured, sender):
    n = recharged_order(client, sandbox, customer)
    consent.record(user_of(n), {RECHARGED: "accept"})
    consent.record(user_of(n), {RECHARGED: "accept"})
    assert credits(user_of(n)) == 2
    message_mode(sandbox, errcode=43101)
    [row] = earned(n)
    assert sender.send_one(row["id"]) == "no_consent"
    assert credits(user_of(n)) == 0 and messages(sandbox) == []
    assert notifications(n)[0]["last_error"].startswith("43101")


def test_busy_twice_then_accepted_is_one_message_after_backoff(client, sandbox, customer, configured, sender):
    n = recharged_order(client, sandbox, customer)
    consent.record(user_of(n), {RECHARGED: "accept"})
    message_mode(sandbox, errcode=-1, count=2)
    [row] = earned(n)
    t0 = utcnow()
    assert sender.send_one(row["id"], t0) == "retry"
    first = notifications(n)[0]
    assert first["status"] == "pending" and first["next_attempt_at"] >= t0 + timedelta(seconds=59)
    assert sender.send_one(row["id"], t0 + timedelta(seconds=30)) is None  # not due yet
    assert sender.send_one(row["id"], t0 + timedelta(seconds=61)) == "retry"
    assert sender.send_one(row["id"], t0 + timedelta(seconds=61 + 301)) == "sent"
    assert len(messages(sandbox)) == 1 and credits(user_of(n)) == 0
    assert notifications(n)[0]["attempts"] == 3


def test_busy_every_time_fails_after_max_attempts(client, sandbox, customer, configured, sender):
    n = recharged_order(client, sandbox, customer)
    consent.record(user_of(n), {RECHARGED: "accept"})
    message_mode(sandbox, errcode=-1)
    [row] = earned(n)
    at, outcomes = utcnow(), []
    for _ in range(5):
        outcomes.append(sender.send_one(row["id"], at))
        at += timedelta(hours=1)
    assert outcomes == ["retry"] * 4 + ["failed"]
    assert sender.send_one(row["id"], at) is None
    assert credits(user_of(n)) == 1  # never spent: WeChat never accepted one


def test_a_field_wechat_refuses_is_failed_with_its_words_and_not_retried(client, sandbox, customer, ctx, sender):
    templates.set_template("recharged", RECHARGED, {"thing1": "product"}, "test")
    n = recharged_order(client, sandbox, customer)
    consent.record(user_of(n), {RECHARGED: "accept"})
    with db.engine.begin() as c:  # a name only our fitting would cut: sent uncut, WeChat says 47003
        c.execute(sa.text("UPDATE products SET name = :x WHERE product_code = '5000'"), {"x": "x" * 21})
    import elife.notify.fields as f
    saved = f._FITTERS[("thing", "product")]
    f._FITTERS[("thing", "product")] = lambda c: c.product  # the fitting broken on purpose
    try:
        [row] = earned(n)
        assert sender.send_one(row["id"]) == "failed"
    finally:
        f._FITTERS[("thing", "product")] = saved
    assert notifications(n)[0]["last_error"].startswith("47003 argument invalid! data.thing1.value")
    assert credits(user_of(n)) == 1


def test_two_sweeps_at_once_send_one_message(app, client, sandbox, customer, configured):
    n = recharged_order(client, sandbox, customer)
    for _ in range(2):  # credit enough for two: only the claim stands between them
        consent.record(user_of(n), {RECHARGED: "accept"})
    earned(n)
    s = app.config["SETTINGS"]
    results, both_have_read = [], threading.Barrier(2, timeout=20)

    class Racing(Sender):
        def send_one(self, notification_id, now=None):
            both_have_read.wait()  # each sweep has read the row as due: only the claim decides
            return super().send_one(notification_id, now)

    def sweep():
        with app.app_context():
            results.append(Racing(s, MessageClient(s)).sweep())

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(messages(sandbox)) == 1
    sent = sum(r.outcomes.get("sent", 0) for r in results)
    assert sent == 1 and notifications(n)[0]["status"] == "sent" and credits(user_of(n)) == 1


def test_a_sender_that_died_mid_send_is_retried_by_the_sweep_after_stuck_seconds(
        client, sandbox, customer, configured, sender):
    n = recharged_order(client, sandbox, customer)
    consent.record(user_of(n), {RECHARGED: "accept"})
    [row] = earned(n)
    t0 = utcnow()
    assert sender._claim(row["id"], t0) == 1  # claimed, then the worker is gone
    assert sender.sweep(now=t0 + timedelta(seconds=60)).found == 0
    summary = sender.sweep(now=t0 + timedelta(seconds=outbox.STUCK_SECONDS + 1))
    assert summary.outcomes == {"sent": 1}
    assert len(messages(sandbox)) == 1 and notifications(n)[0]["attempts"] == 2


def test_earning_twice_is_one_row(client, sandbox, customer, ctx):
    n = recharged_order(client, sandbox, customer)
    earned(n)
    row = order_row(n)
    with db.engine.begin() as c:
        outbox.earn(c, type("O", (), dict(row))(), "recharged")
    assert len(notifications(n)) == 1


def test_consent_input_is_checked(client, sandbox, ctx, configured):
    from elife.errors import Invalid
    h = login(client, "consenting")
    uid = db.session.execute(sa.text("SELECT id FROM users")).scalar()
    db.session.commit()
    assert h
    for bad, code in (({}, "invalid_consent"), ([], "invalid_consent"), ({RECHARGED: "yes"}, "invalid_consent"),
                      ({RECHARGED: 1}, "invalid_consent"), ({"x" * 65: "accept"}, "invalid_consent"),
                      ({f"t{i}": "accept" for i in range(11)}, "invalid_consent"),
                      ({"tmplSomeoneElses": "accept"}, "unknown_template")):
        with pytest.raises(Invalid) as e:
            consent.record(uid, bad)
        assert e.value.code == code
    [c] = consent.consents(uid)
    assert (c.kind, c.credits, c.last_choice) == ("recharged", 0, None)
    consent.record(uid, {RECHARGED: "reject"})
    [c] = consent.consents(uid)
    assert (c.credits, c.last_choice) == (0, "reject")
    for _ in range(consent.MAX_CREDITS + 5):
        consent.record(uid, {RECHARGED: "accept"})
    assert consent.consents(uid)[0].credits == consent.MAX_CREDITS


def test_templates_are_checked_when_set(ctx):
    from elife.errors import Invalid
    for kind, tid, fm in (("paid", RECHARGED, FIELDS), ("recharged", "bad id!", FIELDS), ("recharged", RECHARGED, {}),
                          ("recharged", RECHARGED, {"phrase1": "product"}),
                          ("recharged", RECHARGED, {"thing1": "price"}), ("recharged", RECHARGED, {"thng1": "product"})):
        with pytest.raises(Invalid):
            templates.set_template(kind, tid, fm, "test")
    assert templates.all_templates() == {}
    with pytest.raises(Invalid, match="given twice"):
        templates.parse_fields(["thing1=product", "thing1=amount"])
    assert templates.parse_fields(["thing1=product", " amount2 = amount "]) == {"thing1": "product",
                                                                              "amount2": "amount"}
