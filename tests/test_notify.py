"""The customer hears back (issue 26): a consent posted as the mini-program would, a top-up
paid through the real callback, and the subscribe message the settle earned, sent by the
top-up's own job or by the sweep, as the sandbox (a real HTTP server) received it.

In-process app (RECHARGE_THREADS=0: the job after WeChat's answer runs when the test
client closes the answer), a real database, the sandbox over HTTP."""
import json
import threading
from datetime import timedelta

import pytest
import requests
import sqlalchemy as sa

from conftest import SEED_ORDER, login, order_row
from elife import services
from elife.clients.wechat_messages import MessageClient
from elife.extensions import db
from elife.fulfil import notices, sweep
from elife.models import Notification, NotificationConsent
from elife.notify import outbox, templates
from elife.notify.outbox import Sender
from elife.timeutil import utcnow
from test_refunds import WX, refund_notice

RECHARGED = "tmplRecharged000000000000000000000000000001"
FAILED = "tmplFailedRefunded0000000000000000000000001"
REFUNDED = "tmplRefunded00000000000000000000000000000001"
FIELDS = {
    "recharged": (RECHARGED, {"phone_number1": "phone", "thing2": "product", "amount3": "amount",
                              "time4": "time", "character_string5": "order"}),
    "failed_refunded": (FAILED, {"phone_number1": "phone", "amount2": "amount", "thing3": "reason",
                                 "phrase4": "reason"}),
    "refunded": (REFUNDED, {"amount1": "amount", "time2": "time", "phrase3": "reason"}),
}
OK = {"errcode": 0, "errmsg": "OK"}
ADMIN = {"Authorization": "Bearer test-admin-token"}


# -- helpers ---------------------------------------------------------------------------------

def messages(sandbox, template=None):
    got = requests.get(f"{sandbox.url}/wechat/_messages", timeout=5).json()
    return [m for m in got if template is None or m["template_id"] == template]


def message_mode(sandbox, **body):
    requests.post(f"{sandbox.url}/wechat/_messages_mode", json=body, timeout=5).raise_for_status()


def outbox_rows(n):
    with db.engine.connect() as c:
        return {r["kind"]: dict(r) for r in c.execute(
            sa.select(Notification.__table__).where(Notification.order_number == n)).mappings()}


def credits(template_id=RECHARGED):
    with db.engine.connect() as c:
        return c.execute(sa.select(sa.func.sum(NotificationConsent.credits)).where(
            NotificationConsent.template_id == template_id)).scalar() or 0


def consent(client, headers, **choices):
    """What the mini-program posts after wx.requestSubscribeMessage: {templateId: choice}."""
    by_kind = {"recharged": RECHARGED, "failed_refunded": FAILED, "refunded": REFUNDED}
    r = client.post("/notifications/consent", headers=headers,
                    json={"results": {by_kind[k]: v for k, v in choices.items()}})
    assert r.status_code == 200, r.get_json()
    return r.get_json()


@pytest.fixture
def configured(ctx):
    for kind, (tid, fields) in FIELDS.items():
        templates.set_template(kind, tid, fields, "test")


def order_for(client, headers, phone="88110001"):
    r = client.post("/orders", json={**SEED_ORDER, "phoneNumber": phone}, headers=headers)
    assert r.status_code == 201, r.get_json()
    n = r.get_json()["orderNumber"]
    assert client.post("/payment/create", json={"orderNumber": n}, headers=headers).status_code == 200
    return n


def pay(client, sandbox, headers, phone="88110001", mode="success"):
    """Pay in the sandbox and deliver WeChat's notice here; the top-up (and its message)
    runs when the answer is closed."""
    n = order_for(client, headers, phone)
    sandbox.mode(mode, msisdn=phone)
    sandbox.pay(n, notify=False)
    notice = sandbox.notice(n)
    r = client.post(notice["path"], headers=notice["headers"], data=json.dumps(notice["body"]))
    assert (r.status_code, r.get_json()) == (200, OK)
    return n


def sweep_at(when):
    """The sweep's message pass as it would run at `when`."""
    return outbox.sweep(services.current(), now=when)


# -- consent, credit, and the message -----------------------------------------------------------

def test_a_consent_is_credited_and_spent_once(client, sandbox, customer, configured):
    said = consent(client, customer, recharged="accept")
    assert {t["kind"]: t["credits"] for t in said["templates"]} == {"recharged": 1, "failed_refunded": 0,
                                                                    "refunded": 0}
    n = pay(client, sandbox, customer)
    assert order_row(n)["recharge_status"] == "success"
    [m] = messages(sandbox)
    assert (m["touser"], m["template_id"], m["miniprogram_state"], m["lang"]) == (
        m["touser"], RECHARGED, "formal", "zh_CN")
    assert m["data"]["phone_number1"] == {"value": "+976-88****01"}
    assert m["data"]["thing2"] == {"value": "Unitel voice credit…"}
    assert m["data"]["amount3"] == {"value": "10.50元"} and m["data"]["character_string5"] == {"value": n}
    assert m["data"]["time4"]["value"].endswith(":" + m["data"]["time4"]["value"][-2:])
    row = outbox_rows(n)["recharged"]
    assert (row["status"], row["attempts"], row["template_id"], row["last_error"]) == ("sent", 1, RECHARGED, None)
    assert credits() == 0
    got = client.get("/notifications", headers=customer).get_json()
    assert {t["kind"]: (t["credits"], t["lastChoice"]) for t in got["templates"]}["recharged"] == (0, "accept")

    n2 = pay(client, sandbox, customer, phone="88110002")  # the one credit is spent: nothing more
    assert outbox_rows(n2)["recharged"]["status"] == "skipped"
    assert len(messages(sandbox)) == 1
    assert sweep.run(services.current()).messages == {} and len(messages(sandbox)) == 1


def test_no_consent_skips_the_message_and_the_top_up_is_the_same(client, sandbox, customer, configured):
    n = pay(client, sandbox, customer)
    row = order_row(n)
    assert (row["payment_status"], row["recharge_status"], row["anomaly_reason"]) == ("paid", "success", None)
    m = outbox_rows(n)["recharged"]
    assert m["status"] == "skipped" and "no consent" in m["last_error"] and m["attempts"] == 1
    assert messages(sandbox) == [] and order_row(n) == row
    text = client.get("/metrics", headers=ADMIN).get_data(as_text=True)
    assert 'elife_notifications_total{kind="recharged",outcome="skipped"} 1.0' in text


def test_without_a_template_nothing_is_asked_of_wechat(client, sandbox, customer, ctx):
    n = pay(client, sandbox, customer)
    m = outbox_rows(n)["recharged"]
    assert m["status"] == "skipped" and "no template" in m["last_error"]
    assert requests.get(f"{sandbox.url}/wechat/_message_calls", timeout=5).json() == []


def test_43101_marks_no_consent_and_zeroes_the_credits(client, sandbox, customer, configured):
    consent(client, customer, recharged="accept")
    consent(client, customer, recharged="accept")
    assert credits() == 2
    message_mode(sandbox, errcode=43101)
    n = pay(client, sandbox, customer)
    m = outbox_rows(n)["recharged"]
    assert m["status"] == "no_consent" and m["last_error"].startswith("43101")
    assert credits() == 0 and messages(sandbox) == []
    assert order_row(n)["recharge_status"] == "success"


def test_busy_twice_then_accepted_is_one_message_after_the_backoff(client, sandbox, customer, configured):
    consent(client, customer, recharged="accept")
    message_mode(sandbox, errcode=-1, count=2)
    t0 = utcnow()
    n = pay(client, sandbox, customer)  # the job's attempt: -1
    m = outbox_rows(n)["recharged"]
    assert (m["status"], m["attempts"]) == ("pending", 1) and m["last_error"].startswith("-1")
    assert m["next_attempt_at"] >= t0 + timedelta(seconds=59)
    assert sweep_at(t0 + timedelta(seconds=30)).found == 0  # not due yet
    assert sweep_at(t0 + timedelta(seconds=62)).outcomes == {"retry": 1}
    assert sweep_at(t0 + timedelta(seconds=62 + 301)).outcomes == {"sent": 1}
    assert len(messages(sandbox)) == 1 and credits() == 0
    assert outbox_rows(n)["recharged"]["attempts"] == 3
    assert sweep_at(t0 + timedelta(days=1)).found == 0


def test_busy_every_time_is_failed_after_max_attempts_about_an_hour_later(client, sandbox, customer, configured):
    consent(client, customer, recharged="accept")
    message_mode(sandbox, errcode=-1)
    t0 = utcnow()
    n = pay(client, sandbox, customer)
    at, outcomes = t0, []
    for _ in range(6):
        at = outbox_rows(n)["recharged"]["next_attempt_at"] or at
        outcomes += list(sweep_at(at + timedelta(seconds=1)).outcomes)
    assert outcomes == ["retry", "retry", "retry", "failed"]  # attempts 2..5; the first was the job's
    m = outbox_rows(n)["recharged"]
    assert (m["status"], m["attempts"]) == ("failed", 5)
    assert timedelta(minutes=55) <= at - t0 <= timedelta(minutes=65)
    assert credits() == 1  # WeChat never accepted one: nothing spent


def test_a_field_wechat_refuses_fails_with_its_words_and_is_not_tried_again(client, sandbox, customer, ctx):
    templates.set_template("recharged", RECHARGED, {"thing1": "product"}, "test")
    consent(client, customer, recharged="accept")
    import elife.notify.fields as f
    saved = f._FITTERS[("thing", "product")]
    f._FITTERS[("thing", "product")] = lambda c: c.product  # the fitting broken: 26 characters go out
    try:
        n = pay(client, sandbox, customer)
    finally:
        f._FITTERS[("thing", "product")] = saved
    m = outbox_rows(n)["recharged"]
    assert m["status"] == "failed" and m["last_error"].startswith("47003 argument invalid! data.thing1.value")
    assert sweep_at(utcnow() + timedelta(hours=2)).found == 0 and credits() == 1


# -- crashes and races ---------------------------------------------------------------------------

def test_a_worker_killed_between_the_settle_and_the_send_leaves_it_to_the_sweep(client, sandbox, customer, configured):
    consent(client, customer, recharged="accept")
    n = order_for(client, customer)
    sandbox.pay(n, notify=False)
    notice = sandbox.notice(n)
    svc, jobs = services.current(), []
    parsed = svc.pay.parse_notice(json.dumps(notice["body"]).encode(), notice["headers"])
    assert notices.handle_payment(svc, n, parsed, later=jobs.append).decision == "paid"
    for job in jobs:
        job()  # the top-up and its settle, as the pool runs them -- then the worker is gone
    assert order_row(n)["recharge_status"] == "success"
    assert outbox_rows(n)["recharged"]["status"] == "pending" and messages(sandbox) == []
    summary = sweep.run(svc)
    assert summary.messages == {"sent": 1} and "messages=sent:1" in summary.line()
    assert sweep.run(svc).messages == {}
    assert len(messages(sandbox)) == 1 and outbox_rows(n)["recharged"]["status"] == "sent"


def test_a_sender_that_died_mid_send_is_sent_again_stuck_seconds_later(client, sandbox, customer, configured):
    consent(client, customer, recharged="accept")
    consent(client, customer, recharged="accept")
    message_mode(sandbox, errcode=-1, count=1)
    n = pay(client, sandbox, customer)
    row = outbox_rows(n)["recharged"]
    t = row["next_attempt_at"] + timedelta(seconds=1)
    s = services.current()
    assert Sender(s.settings, s.messages)._claim(row["id"], t) == 2  # claimed, then the worker died
    assert sweep_at(t + timedelta(seconds=60)).found == 0
    assert sweep_at(t + timedelta(seconds=outbox.STUCK_SECONDS + 1)).outcomes == {"sent": 1}
    assert len(messages(sandbox)) == 1 and outbox_rows(n)["recharged"]["attempts"] == 3


def test_two_sweeps_at_once_send_one_message(app, client, sandbox, customer, configured):
    consent(client, customer, recharged="accept")
    consent(client, customer, recharged="accept")  # credit for two: only the claim stands between them
    message_mode(sandbox, errcode=-1, count=1)
    n = pay(client, sandbox, customer)
    due = outbox_rows(n)["recharged"]["next_attempt_at"] + timedelta(seconds=1)
    s = services.current()
    results, both_have_read = [], threading.Barrier(2, timeout=20)

    class Racing(Sender):
        def send_one(self, notification_id, now=None):
            both_have_read.wait()  # each sweep has read the row as due: only the claim decides
            return super().send_one(notification_id, now)

    def one_sweep():
        with app.app_context():
            results.append(Racing(s.settings, MessageClient(s.settings)).sweep(now=due))

    threads = [threading.Thread(target=one_sweep) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(o for r in results for o in r.outcomes) == ["sent", "taken"]
    assert len(messages(sandbox)) == 1 and credits() == 1


def test_the_message_is_earned_in_the_moves_own_transaction(client, sandbox, customer, configured):
    """Rolled back with its move, committed with it: a crash loses neither alone."""
    from elife.fulfil import state
    n = pay(client, sandbox, customer, mode="unknown")  # left unknown: a settle may still come
    order = state.read_fresh(n)
    assert state._update("settle_success", order) is not None  # the move and its row, not committed
    db.session.rollback()  # the process dies before the commit
    assert order_row(n)["recharge_status"] == "unknown" and outbox_rows(n) == {}
    assert state.settle_success(services.current().settings, order) is not None
    assert order_row(n)["recharge_status"] == "success" and outbox_rows(n)["recharged"]["status"] == "pending"


def test_earning_twice_is_one_row(client, sandbox, customer, configured):
    n = pay(client, sandbox, customer)
    row = order_row(n)
    with db.engine.begin() as c:
        outbox.earn(c, type("Row", (), dict(row))(), "recharged")
    assert list(outbox_rows(n)) == ["recharged"]


# -- failed and refunded -------------------------------------------------------------------------

def test_a_refused_top_up_tells_failed_refunded_and_refunded_only_once_the_refund_is_confirmed(
        client, sandbox, customer, configured):
    consent(client, customer, failed_refunded="accept", refunded="accept")
    sandbox.refund_mode("processing")
    n = pay(client, sandbox, customer, phone="89300101", mode="fail")
    row = order_row(n)
    assert (row["payment_status"], row["recharge_status"]) == ("refunding", "failed")
    [m] = messages(sandbox)  # accepted by WeChat is not refunded: no `refunded` yet
    assert m["template_id"] == FAILED
    assert m["data"] == {"phone_number1": {"value": "+976-89****01"}, "amount2": {"value": "10.50元"},
                         "thing3": {"value": "号码未开通服务，款项将原路退回"}, "phrase4": {"value": "退款中"}}
    assert set(outbox_rows(n)) == {"failed_refunded"}
    assert sweep.run(services.current()).messages == {}

    sandbox.refund_settle(n, "SUCCESS", notify=False)  # WeChat refunds; its notice comes here
    r = client.post(f"/payment/refund-callback/{n}", data=json.dumps(refund_notice(n)), headers=WX)
    assert r.get_json() == OK and order_row(n)["payment_status"] == "refunded"
    refunded = messages(sandbox, REFUNDED)
    assert len(refunded) == 1 and refunded[0]["data"]["phrase3"] == {"value": "已退款"}
    r = client.post(f"/payment/refund-callback/{n}", data=json.dumps(refund_notice(n)), headers=WX)
    assert r.get_json() == OK  # the same notice again: still one
    assert len(messages(sandbox)) == 2
    assert {k: v["status"] for k, v in outbox_rows(n).items()} == {"failed_refunded": "sent", "refunded": "sent"}


def test_a_refund_wechat_closes_never_says_refunded(client, sandbox, customer, configured):
    consent(client, customer, failed_refunded="accept", refunded="accept")
    sandbox.refund_mode("processing")
    n = pay(client, sandbox, customer, phone="89300102", mode="fail")
    sandbox.refund_settle(n, "REFUNDCLOSE", notify=False)
    r = client.post(f"/payment/refund-callback/{n}", headers=WX,
                    data=json.dumps(refund_notice(n, status="REFUNDCLOSE")))
    assert r.get_json() == OK and order_row(n)["payment_status"] == "paid"
    assert set(outbox_rows(n)) == {"failed_refunded"} and messages(sandbox, REFUNDED) == []


def test_a_refund_confirmed_at_once_tells_both_in_order(client, sandbox, customer, configured):
    consent(client, customer, failed_refunded="accept", refunded="accept")
    n = pay(client, sandbox, customer, phone="89300103", mode="fail")  # refund mode success: confirmed at once
    sandbox.notices_delivered()
    assert order_row(n)["payment_status"] == "refunded"
    assert [m["template_id"] for m in messages(sandbox)] == [FAILED, REFUNDED]


def test_a_person_marking_a_top_up_delivered_earns_recharged_sent_by_the_sweep(make_app, client, sandbox, ctx):
    app = make_app(UNITEL_STATUS_PATH="none")
    c = app.test_client()
    with app.app_context():
        for kind, (tid, fields) in FIELDS.items():
            templates.set_template(kind, tid, fields, "test")
        h = login(c, "unclear-customer")
        consent(c, h, recharged="accept")
        n = pay(c, sandbox, h, phone="88110009", mode="unknown")
        assert order_row(n)["recharge_status"] == "unknown" and outbox_rows(n) == {}
        r = c.post(f"/admin/orders/{n}/mark-delivered", headers=ADMIN, data={"note": "Unitel says done"})
        assert r.status_code in (200, 303), r.data[:300]
        assert outbox_rows(n)["recharged"]["status"] == "pending"
        assert sweep.run(services.current()).messages == {"sent": 1}
        assert len(messages(sandbox)) == 1


# -- for the person on duty -----------------------------------------------------------------------

def test_the_admin_page_and_the_report_show_each_message_and_its_fate(client, sandbox, customer, configured):
    consent(client, customer, recharged="accept")
    n = pay(client, sandbox, customer)
    n2 = pay(client, sandbox, customer, phone="88110002")
    page = client.get(f"/admin/orders/{n}", headers={**ADMIN, "Accept": "text/html"}).get_data(as_text=True)
    assert 'id="messages"' in page and "recharged" in page and "status-message-sent" in page
    detail = client.get(f"/admin/orders/{n2}.json", headers=ADMIN).get_json()
    [m] = detail["messages"]
    assert (m["kind"], m["status"], m["attempts"]) == ("recharged", "skipped", 1) and "no consent" in m["lastError"]
    rep = client.get("/admin/reports.json", headers=ADMIN).get_json()["messages"]
    [today] = rep["daily"]
    assert (today["sent"], today["skipped"], today["no_consent"], today["failed"]) == (1, 1, 0, 0)
    text = client.get("/metrics", headers=ADMIN).get_data(as_text=True)
    assert 'elife_notifications_total{kind="recharged",outcome="sent"} 1.0' in text
    assert 'elife_notifications_total{kind="recharged",outcome="skipped"} 1.0' in text


# -- bad input ------------------------------------------------------------------------------------

@pytest.mark.parametrize("body, code", [
    ("{not json", "malformed_json"), ("[]", "body_not_object"), ("", "missing_body"),
    ('{"result": {}}', "missing_field"), ('{"results": []}', "invalid_consent"),
    ('{"results": {}}', "invalid_consent"), ('{"results": "accept"}', "invalid_consent"),
    (json.dumps({"results": {RECHARGED: "yes"}}), "invalid_consent"),
    (json.dumps({"results": {RECHARGED: 1}}), "invalid_consent"),
    (json.dumps({"results": {RECHARGED: None}}), "invalid_consent"),
    (json.dumps({"results": {"x" * 65: "accept"}}), "invalid_consent"),
    (json.dumps({"results": {"bad id!": "accept"}}), "invalid_consent"),
    (json.dumps({"results": {f"tmpl{i}": "accept" for i in range(11)}}), "invalid_consent"),
    (json.dumps({"results": {"tmplSomeoneElses": "accept"}}), "unknown_template"),
    (json.dumps({"results": {RECHARGED: "accept", "tmplSomeoneElses": "accept"}}), "unknown_template"),
    (json.dumps({"results": {"a" * 10_000: "accept"}}), "invalid_consent"),
])
def test_a_bad_consent_is_a_400_and_credits_nothing(client, customer, configured, body, code):
    r = client.post("/notifications/consent", data=body, headers={**customer, "Content-Type": "application/json"})
    assert (r.status_code, r.get_json()["error"]["code"]) == (400, code)
    assert credits() == 0


def test_consent_needs_a_customer(client, configured):
    body = {"results": {RECHARGED: "accept"}}
    assert client.post("/notifications/consent", json=body).status_code == 401
    assert client.post("/notifications/consent", json=body,
                       headers={"Authorization": "Bearer forged"}).status_code == 401
    assert client.get("/notifications").status_code == 401
    assert credits() == 0


def test_choices_are_recorded_and_credits_have_a_ceiling(app, client, customer):
    """No app context held across requests here: a test's own context would be every
    request's, and `g` (the caller, cached) with it."""
    from elife.notify import consent as consents
    with app.app_context():
        for kind, (tid, fields) in FIELDS.items():
            templates.set_template(kind, tid, fields, "test")
    said = consent(client, customer, recharged="reject", refunded="ban", failed_refunded="filter")
    assert {t["kind"]: (t["credits"], t["lastChoice"]) for t in said["templates"]} == {
        "recharged": (0, "reject"), "refunded": (0, "ban"), "failed_refunded": (0, "filter")}
    for _ in range(consents.MAX_CREDITS + 3):
        consent(client, customer, recharged="accept")
    said = consent(client, customer, recharged="reject")  # a later reject keeps what was given
    assert {t["kind"]: t["credits"] for t in said["templates"]}["recharged"] == consents.MAX_CREDITS
    other = login(client, "another-customer")
    assert {t["kind"]: t["credits"] for t in client.get("/notifications", headers=other).get_json()["templates"]} \
        == {"recharged": 0, "failed_refunded": 0, "refunded": 0}


# -- configuring templates ------------------------------------------------------------------------

def test_templates_are_set_and_listed_by_the_command_and_checked_first(app, ctx):
    runner = app.test_cli_runner()
    r = runner.invoke(args=["elife", "notify", "template", "set", "recharged", RECHARGED,
                            "--field", "thing1=product", "amount2=amount", "--field", "time3=time"])
    assert r.exit_code == 0, r.output
    assert templates.template("recharged").fields == {"thing1": "product", "time3": "time", "amount2": "amount"}
    for bad, said in ((["--field", "phrase1=product"], "cannot be said in a phrase field"),
                      (["--field", "thing1=price"], "not a value"),
                      (["--field", "thng1=product"], "not a field key"),
                      (["--field", "thing1"], "KEY=VALUE"),
                      (["--field", "thing1=product", "thing1=amount"], "given twice"),
                      ([], "at least one")):
        r = runner.invoke(args=["elife", "notify", "template", "set", "refunded", REFUNDED, *bad])
        assert r.exit_code == 1 and said in r.output, (bad, r.output)
    r = runner.invoke(args=["elife", "notify", "template", "set", "refunded", "not an id", "--field", "amount1=amount"])
    assert r.exit_code == 1 and "invalid_template_id" in r.output
    r = runner.invoke(args=["elife", "notify", "template", "set", "paid", REFUNDED, "--field", "amount1=amount"])
    assert r.exit_code == 2 and "paid" in r.output
    r = runner.invoke(args=["elife", "notify", "template", "list"])
    assert r.exit_code == 0 and f"recharged        {RECHARGED}  thing1=product time3=time amount2=amount" in r.output
    assert "refunded         not configured" in r.output
    r = runner.invoke(args=["elife", "notify", "template", "list", "--json"])
    listed = json.loads(r.output[r.output.index("{"):])
    assert [t["kind"] for t in listed["templates"]] == ["recharged"]
