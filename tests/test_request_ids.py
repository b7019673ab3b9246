"""Request ids (issue 17, part 5): every response carries X-Request-Id (the caller's when
sane, else a new one); every log line written while the request is handled ends with
req=<id>; the id is on the audit rows of the Unitel and WeChat calls the request made;
LOG_FORMAT=json writes the same events, one JSON object per line, with the same keys.

The end-to-end case is the service under gunicorn over real HTTP with the sandbox."""
import json
import re

import pytest
import requests
import sqlalchemy as sa

from conftest import SEED_ORDER, wait_settled
from elife import services
from elife import logs
from elife.extensions import db

HEX32 = re.compile(r"[0-9a-f]{32}")


def calls(n):
    with db.engine.connect() as c:
        return c.execute(sa.text("SELECT kind, outcome, request_id, http_request_id FROM operator_calls "
                                 "WHERE order_number = :n ORDER BY id"), {"n": n}).all()


def lines_with(log_dir, *needles):
    text = (log_dir / "combined.log").read_text(encoding="utf-8")
    return [ln for ln in text.splitlines() if all(s in ln for s in needles)]


# -- the header ---------------------------------------------------------------------------------

@pytest.mark.parametrize("method, path, status", [
    ("GET", "/health", 200), ("GET", "/products", 200), ("GET", "/nope", 404), ("DELETE", "/health", 405),
    ("GET", "/orders", 401), ("POST", "/orders", 401), ("GET", "/admin", 401), ("GET", "/metrics", 401),
    ("GET", "/openapi.json", 200), ("POST", "/payment/callback/ORD1", 400),
])
def test_every_response_carries_a_new_id_when_none_was_sent(client, method, path, status):
    r = client.open(path, method=method)
    assert r.status_code == status
    assert HEX32.fullmatch(r.headers["X-Request-Id"])
    assert client.open(path, method=method).headers["X-Request-Id"] != r.headers["X-Request-Id"]


@pytest.mark.parametrize("sent", ["abc", "A-b_c.9", "0" * 64, "2f1c6a0e-5b1d-4a53-9a65-3f4f2d8c1e77"])
def test_a_sane_id_is_echoed(client, sent):
    assert client.get("/health", headers={"X-Request-Id": sent}).headers["X-Request-Id"] == sent


@pytest.mark.parametrize("sent", ["", " ", "a" * 65, "a b", "a\tb", "x=1", "ab;cd", "req=forged event=x",
                                  "é", "../x", "a/b", "{}"])
def test_anything_else_is_replaced(client, sent, log_dir):
    r = client.get("/nope", headers={"X-Request-Id": sent})
    got = r.headers["X-Request-Id"]
    assert HEX32.fullmatch(got) and got != sent
    assert not lines_with(log_dir, "req=forged")


def test_a_large_body_refused_before_reading_carries_one_too(client):
    r = client.post("/orders", data=b"x" * 70_000, headers={"X-Request-Id": "big-1",
                                                            "Content-Type": "application/json"})
    assert r.status_code == 413 and r.headers["X-Request-Id"] == "big-1"


# -- to the log line and the audit row ------------------------------------------------------------

def test_the_lines_a_request_writes_end_with_its_id(client, customer, log_dir):
    r = client.post("/orders", json=SEED_ORDER, headers={**customer, "X-Request-Id": "order-req-1"})
    assert r.status_code == 201 and r.headers["X-Request-Id"] == "order-req-1"
    n = r.get_json()["orderNumber"]
    created = lines_with(log_dir, "event=order_created", f"order={n}")
    assert len(created) == 1 and created[0].endswith(" req=order-req-1")
    r = client.post(f"/payment/callback/{n}", json={"returnCode": "SUCCESS", "resultCode": "SUCCESS",
                                                    "outTradeNo": n, "attach": json.dumps({"orderNumber": n}),
                                                    "totalFee": 1}, headers={"X-Request-Id": "cb-req-1"})
    flagged = lines_with(log_dir, "event=amount_mismatch", f"order={n}")
    assert len(flagged) == 1 and flagged[0].endswith(" 支付金额不匹配 req=cb-req-1")


def test_lines_outside_a_request_carry_no_id(app, client, log_dir):
    client.get("/health", headers={"X-Request-Id": "before-sweep"})
    from elife.fulfil import sweep
    with app.app_context():
        sweep.run(services.current())
    line = lines_with(log_dir, "event=sweep_summary")[-1]
    assert "req=" not in line
    assert logs.current_request_id() is None


def test_the_id_goes_on_to_the_unitel_and_wechat_audit_rows(client, customer, sandbox, ctx):
    sandbox.mode("fail", "88000031")  # a refused top-up: the Unitel submit, then WeChat's refund
    r = client.post("/orders", json={**SEED_ORDER, "phoneNumber": "88000031"}, headers=customer)
    n = r.get_json()["orderNumber"]
    assert client.post("/payment/create", json={"orderNumber": n}, headers=customer).status_code == 200
    assert sandbox.pay(n, notify=False).status_code == 200
    notice = sandbox.notice(n)
    r = client.post(notice["path"], json=notice["body"], headers={**notice["headers"], "X-Request-Id": "wx-cb-7"})
    assert r.get_json() == {"errcode": 0, "errmsg": "OK"} and r.headers["X-Request-Id"] == "wx-cb-7"
    rows = calls(n)
    assert [(k, o) for k, o, _, _ in rows] == [("submit", "failed"), ("refund", "success"),
                                               ("refund_query", "success")]
    assert {h for _, _, _, h in rows} == {"wx-cb-7"}
    assert {rid for _, _, rid, _ in rows} == {n}  # the operator's request id is still the order's


@pytest.mark.e2e
def test_one_id_from_the_header_through_gunicorn_to_log_lines_and_audit_row(live, sandbox, ctx):
    headers = live.login()
    n = live.new_paid_ready_order(headers)
    assert sandbox.pay(n, notify=False).status_code == 200
    notice = sandbox.notice(n)
    rid = "trace-" + n[-8:]
    r = requests.post(live.url + notice["path"], json=notice["body"],
                      headers={**notice["headers"], "X-Request-Id": rid}, timeout=20)
    assert r.status_code == 200 and r.headers["X-Request-Id"] == rid
    wait_settled(n)  # the top-up runs after the answer, under the same request id
    assert live.get_order(headers, n)["rechargeStatus"] == "success"
    traced = lines_with(live.log_dir, f"req={rid}")
    events = [re.search(r"event=(\S+)", ln).group(1) for ln in traced]
    for key in ("payment_confirmed", "claim_won", "operator_answer", "recharge_success"):
        assert key in events, (key, traced)
    assert all(f"order={n}" in ln for ln in traced if "order=" in ln)
    assert [(k, h) for k, _, _, h in calls(n)] == [("submit", rid)]


# -- LOG_FORMAT=json ---------------------------------------------------------------------------------

@pytest.fixture
def json_logs(app, client, customer, make_app, tmp_path):
    """After the usual app (whose creation sets the session's text logging up)."""
    app = make_app(LOG_FORMAT="json", LOG_DIR=str(tmp_path))
    yield app, tmp_path, make_app
    make_app()  # the session's text logging again, for the tests after this one


def test_json_logs_are_one_object_per_line_with_the_text_lines_keys(json_logs, client, customer, log_dir):
    app, json_dir, make_app = json_logs
    jc = app.test_client()
    r = jc.post("/auth/login", json={"code": "json-logs"})
    auth = {"Authorization": f"Bearer {r.get_json()['token']}"}
    r = jc.post("/orders", json=SEED_ORDER, headers={**auth, "X-Request-Id": "json-1"})
    n = r.get_json()["orderNumber"]
    jc.post(f"/payment/callback/{n}", json={"returnCode": "SUCCESS", "resultCode": "SUCCESS", "outTradeNo": n,
                                            "attach": json.dumps({"orderNumber": n}), "totalFee": 1})
    raw = (json_dir / "combined.log").read_text(encoding="utf-8").splitlines()
    assert raw
    objs = [json.loads(ln) for ln in raw]  # every line parses on its own
    assert all(isinstance(o, dict) and {"time", "level", "logger"} <= set(o) for o in objs)
    created = [o for o in objs if o.get("event") == "order_created"]
    assert len(created) == 1
    o = created[0]
    assert o["order"] == n and o["req"] == "json-1" and o["phone"] == "88****88" and o["level"] == "INFO"
    mismatch = next(o for o in objs if o.get("event") == "amount_mismatch")
    assert mismatch["message"] == "支付金额不匹配" and mismatch["received"] == "1" and HEX32.fullmatch(mismatch["req"])
    errors = [json.loads(ln) for ln in (json_dir / "error.log").read_text(encoding="utf-8").splitlines()]
    assert [e["event"] for e in errors] == ["amount_mismatch"]

    # the same event in the text format has the same keys
    make_app()
    r = client.post("/orders", json=SEED_ORDER, headers={**customer, "X-Request-Id": "text-1"})
    m = r.get_json()["orderNumber"]
    text_line = lines_with(log_dir, "event=order_created", f"order={m}")[0]
    keys = set(re.findall(r"(?:^|\s)([a-z_]+)=", text_line))
    assert keys | {"time", "level", "logger"} == set(o)


@pytest.mark.parametrize("message, fields, rest", [
    ("event=x order=ORD1 k=v", {"event": "x", "order": "ORD1", "k": "v"}, ""),
    ("event=x 订单正在被其他进程处理", {"event": "x"}, "订单正在被其他进程处理"),
    ('event=x error="a b \\" c" n=1 free text a=b', {"event": "x", "error": 'a b " c', "n": "1"}, "free text a=b"),
    ("event=x level=9 req=z", {"event": "x", "field_level": "9", "field_req": "z"}, ""),
    ("no fields here", {}, "no fields here"),
    ("event=x empty= tail", {"event": "x", "empty": ""}, "tail"),
])
def test_the_json_line_reads_the_text_lines_fields(message, fields, rest):
    assert logs.fields_of(message) == (fields, rest)
