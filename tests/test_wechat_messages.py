"""The subscribe-message client against the sandbox over real HTTP: both homes (Cloud
Hosting's open API without a token; a host with stable_token's access_token, shared by
workers through the database), and what each of WeChat's answers becomes."""
from datetime import timedelta

import pytest
import requests
import sqlalchemy as sa

from elife.clients.wechat_messages import NO_CONSENT, REJECTED, RETRY, SENT, Message, MessageClient
from elife.extensions import db
from elife.models import WeChatToken
from elife.notify.tokens import DatabaseTokens
from elife.timeutil import utcnow

OPENID = "oSandboxCustomer0000000000001"
TEMPLATE = "tmplRecharged0000000000000000000000000001"


def message(**kw):
    base = dict(touser=OPENID, template_id=TEMPLATE, page="pages/order/detail?orderNumber=ORD1",
                data={"thing1": "Unitel voice credit…", "amount2": "10.50元", "time3": "2026年01月18日 10:00"},
                miniprogram_state="developer", lang="zh_CN")
    return Message(**{**base, **kw})


def get(sandbox, path):
    return requests.get(f"{sandbox.url}/wechat/{path}", timeout=5).json()


def mode(sandbox, **body):
    r = requests.post(f"{sandbox.url}/wechat/_messages_mode", json=body, timeout=5)
    assert r.status_code == 200, r.text


@pytest.fixture
def cloud(app, sandbox):
    with app.app_context():
        yield MessageClient(app.config["SETTINGS"])


@pytest.fixture
def host_app(make_app, sandbox, app):
    """A host: messages need stable_token's access_token (app: the database emptied)."""
    return make_app(WECHAT_MESSAGE_API="token", WECHAT_SECRET="sandbox-secret")


def worker(host_app):
    """One gunicorn worker's client: its own object, the database shared."""
    s = host_app.config["SETTINGS"]
    return MessageClient(s, DatabaseTokens(s.WECHAT_APPID))


def test_cloud_hosting_sends_without_a_token_and_the_sandbox_keeps_it_as_sent(cloud, sandbox):
    answer = cloud.send(message())
    assert (answer.outcome, answer.errcode) == (SENT, 0) and answer.seqid
    [sent] = get(sandbox, "_messages")
    assert sent["via"] == "open-api"
    assert {k: sent[k] for k in ("touser", "template_id", "page", "miniprogram_state", "lang")} == {
        "touser": OPENID, "template_id": TEMPLATE, "page": "pages/order/detail?orderNumber=ORD1",
        "miniprogram_state": "developer", "lang": "zh_CN"}
    assert sent["data"] == {"thing1": {"value": "Unitel voice credit…"}, "amount2": {"value": "10.50元"},
                            "time3": {"value": "2026年01月18日 10:00"}}
    assert get(sandbox, "_stable_tokens") == []


@pytest.mark.parametrize("change, code", [
    ({"data": {"thing1": "x" * 21}}, 47003),
    ({"data": {"phrase1": "refunding"}}, 47003),
    ({"data": {"amount1": "10.5 yuan"}}, 47003),
    ({"data": {"time1": "2026-01-18T10:00:00Z"}}, 47003),
    ({"data": {"character_string1": "Нэгж"}}, 47003),
    ({"touser": ""}, 40003),
    ({"template_id": ""}, 40037),
    ({"page": "https://example.com/order"}, 41030),
])
def test_what_wechat_refuses_is_rejected_with_its_words_and_never_recorded_as_sent(cloud, sandbox, change, code):
    answer = cloud.send(message(**change))
    assert (answer.outcome, answer.errcode) == (REJECTED, code)
    assert answer.errmsg and answer.said.startswith(str(code))
    if code == 47003:
        assert f"data.{next(iter(change['data']))}.value" in answer.errmsg
    assert get(sandbox, "_messages") == [] and len(get(sandbox, "_message_calls")) == 1


def test_no_consent_left_is_43101(cloud, sandbox):
    mode(sandbox, errcode=43101)
    answer = cloud.send(message())
    assert (answer.outcome, answer.errcode) == (NO_CONSENT, 43101)
    assert get(sandbox, "_messages") == []


def test_busy_twice_then_accepted_is_one_message(cloud, sandbox):
    mode(sandbox, errcode=-1, count=2)
    outcomes = [cloud.send(message()).outcome for _ in range(3)]
    assert outcomes == [RETRY, RETRY, SENT]
    assert len(get(sandbox, "_messages")) == 1 and len(get(sandbox, "_message_calls")) == 3


def test_a_gateway_5xx_and_no_answer_at_all_are_retried(cloud, sandbox, app):
    mode(sandbox, errcode=-1, count=1, http=503)
    answer = cloud.send(message())
    assert (answer.outcome, answer.http_status) == (RETRY, 503)
    s = app.config["SETTINGS"]
    from dataclasses import replace
    from conftest import free_port
    gone = MessageClient(replace(s, WECHAT_API_BASE=f"http://127.0.0.1:{free_port()}/wechat"))
    answer = gone.send(message())
    assert answer.outcome == RETRY and "no answer" in answer.errmsg


def test_a_host_asks_stable_token_once_and_every_worker_uses_that_token(host_app, sandbox):
    with host_app.app_context():
        a, b = worker(host_app), worker(host_app)
        assert a.send(message()).outcome == SENT
        assert b.send(message()).outcome == SENT
        calls = get(sandbox, "_stable_tokens")
        assert [(c["appid"], c["force_refresh"]) for c in calls] == [("wxsandbox000000000", False)]
        with db.engine.connect() as c:
            [row] = c.execute(sa.select(WeChatToken.__table__)).mappings().all()
        assert row["expires_at"] > utcnow() + timedelta(seconds=7000)
    assert [m["via"] for m in get(sandbox, "_messages")] == ["token", "token"]


def test_a_token_wechat_voided_is_renewed_on_40001_once_for_every_worker(host_app, sandbox):
    with host_app.app_context():
        a, b = worker(host_app), worker(host_app)
        assert a.send(message()).outcome == SENT
        old = DatabaseTokens("wxsandbox000000000").load().value
        requests.post(f"{sandbox.url}/wechat/_expire_tokens", timeout=5).raise_for_status()
        assert a.send(message()).outcome == SENT  # 40001, a new token, the same message once more
        new = DatabaseTokens("wxsandbox000000000").load().value
        assert new != old
        assert b.send(message()).outcome == SENT  # b reads the renewed token: no 40001, no request
    calls = get(sandbox, "_message_calls")
    assert [c["errcode"] for c in calls] == [0, 40001, 0, 0]
    assert len(get(sandbox, "_stable_tokens")) == 2 and len(get(sandbox, "_messages")) == 3


def test_a_token_in_its_last_minutes_is_renewed_before_it_is_used(host_app, sandbox):
    with host_app.app_context():
        a = worker(host_app)
        assert a.send(message()).outcome == SENT
        with db.engine.begin() as c:  # as if 2 h had nearly passed
            c.execute(WeChatToken.__table__.update().values(expires_at=utcnow() + timedelta(minutes=2)))
        assert a.send(message()).outcome == SENT
        assert DatabaseTokens("wxsandbox000000000").load().expires_at > utcnow() + timedelta(hours=1)
    assert len(get(sandbox, "_stable_tokens")) == 2
    assert [c["errcode"] for c in get(sandbox, "_message_calls")] == [0, 0]


def test_a_forced_refresh_is_claimed_by_one_worker_at_a_time(host_app, sandbox):
    with host_app.app_context():
        worker(host_app).token()
        tokens = DatabaseTokens("wxsandbox000000000")
        now = utcnow()
        assert tokens.claim_force(now) is True
        assert tokens.claim_force(now + timedelta(seconds=5)) is False
        assert tokens.claim_force(now + timedelta(seconds=31)) is True


def test_a_host_without_a_token_retries_later_and_sends_nothing(make_app, sandbox, app):
    bad = make_app(WECHAT_MESSAGE_API="token", WECHAT_SECRET="s", WECHAT_APPID="not-an-appid")
    with bad.app_context():
        answer = worker(bad).send(message())
    assert answer.outcome == RETRY and "40013" in answer.errmsg
    assert get(sandbox, "_message_calls") == []


def test_the_sandbox_checks_its_control_input(sandbox):
    for body in ({"errcode": 40001}, {"errcode": "0"}, {"errcode": 0, "count": 0}, {"errcode": -1, "http": 404},
                 [], None):
        r = requests.post(f"{sandbox.url}/wechat/_messages_mode", json=body, timeout=5)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_mode"
    r = requests.post(f"{sandbox.url}/wechat/cgi-bin/message/subscribe/send", data="{not json", timeout=5)
    assert r.json()["errcode"] == 47001
