"""/admin (issue 6, part 4): who gets in (Bearer token, the browser's login cookie, CSRF),
the reports and their charts, the anomaly list, an order's audit trail, and the three
actions, each through the state machine and each leaving an order_events row.

In-process app, a real database (SQLite file or MariaDB) and the sandbox as a real HTTP
server. The real browser is in test_admin_browser.py."""
import json
import re
import time
from decimal import Decimal

import pytest
import sqlalchemy as sa
from itsdangerous import TimestampSigner

from conftest import SEED_ORDER, Sandbox, mysql_only, order_row
from elife import services
from elife.fulfil import state
from elife.ops import reports
from elife.extensions import db

TOKEN = "test-admin-token"  # conftest's ADMIN_TOKEN
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
JSON = {"Accept": "application/json"}
COOKIE = "elife_admin"


@pytest.fixture(autouse=True)
def _in_app_context(ctx):
    """order_row() and friends read the test database through the app."""


# -- helpers ---------------------------------------------------------------------------------

def new_order(client, customer, phone="88888888"):
    r = client.post("/orders", json={**SEED_ORDER, "phoneNumber": phone}, headers=customer)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def mismatched_callback(client, order, fee_delta=1):
    """A payment WeChat confirms for another amount than the order's, and its notice:
    recorded, flagged, never paid."""
    n = order["orderNumber"]
    sandbox = Sandbox(f"http://127.0.0.1:{client.application.config['SETTINGS'].SANDBOX_PORT}")
    sandbox.trade(n, order["totalFee"] + fee_delta)
    sandbox.pay(n, notify=False)
    notice = sandbox.notice(n)
    r = client.post(notice["path"], data=json.dumps(notice["body"]), headers=notice["headers"])
    assert r.get_json() == {"errcode": 0, "errmsg": "OK"}
    row = order_row(n)
    assert row["anomaly_reason"] == "amount_mismatch" and row["payment_status"] == "unpaid"
    return n


def paid_through_sandbox(client, customer, sandbox, order):
    """Create the trade, pay it in the sandbox (callback held back), deliver its notice here."""
    n = order["orderNumber"]
    assert client.post("/payment/create", json={"orderNumber": n}, headers=customer).status_code == 200
    assert sandbox.pay(n, notify=False).status_code == 200
    notice = sandbox.notice(n)
    r = client.post(notice["path"], json=notice["body"], headers=notice["headers"])
    assert r.get_json()["errcode"] == 0, r.get_json()
    return n


def events(n):
    with db.engine.connect() as c:
        return c.execute(sa.text("SELECT event, actor, note FROM order_events WHERE order_number = :n ORDER BY id"),
                         {"n": n}).mappings().all()


def operator_calls(n):
    with db.engine.connect() as c:
        return [k for (k,) in c.execute(sa.text("SELECT kind FROM operator_calls WHERE order_number = :n ORDER BY id"),
                                        {"n": n})]


def page(client, path, headers=None):
    r = client.get(path, headers={**ADMIN, **HTML, **(headers or {})})
    assert r.status_code == 200, (path, r.status_code, r.data[:300])
    assert r.mimetype == "text/html"
    return r.get_data(as_text=True)


def login(client, name="", token=TOKEN, **extra):
    return client.post("/admin/login", data={"token": token, "name": name, **extra}, headers=HTML)


def csrf_from(html):
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF field on the page"
    return m.group(1)


def admin_cookie(client):
    c = client.get_cookie(COOKIE, path="/admin")
    return c and c.value


URL_ATTR = re.compile(r'\b(?:src|href|action|xlink:href|srcset|poster|data)\s*=\s*["\']?\s*([^"\'\s>]+)', re.I)


def assert_self_contained(html):
    """Nothing is loaded from or linked to another site: it works offline."""
    for url in URL_ATTR.findall(html):
        assert not url.lower().startswith(("http://", "https://", "//")), url
    assert "http://" not in html and "https://" not in html
    assert "<script" not in html.lower()
    assert "<link" not in html.lower() and "@import" not in html


# -- who gets in -----------------------------------------------------------------------------

ADMIN_PATHS = ("/admin", "/admin/reports.json", "/admin/orders/ORD20260101000000000001")
ACTION_PATHS = ("/admin/orders/ORD20260101000000000001/reconcile", "/admin/orders/ORD20260101000000000001/refund",
                "/admin/orders/ORD20260101000000000001/resolve", "/admin/logout")


@pytest.mark.parametrize("path", ADMIN_PATHS)
def test_without_a_token_is_401_json(client, path):
    r = client.get(path)
    assert r.status_code == 401
    assert r.get_json()["error"]["code"] == "missing_token"
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    r = client.get(path, headers={"Authorization": "Basic YWRtaW46YWRtaW4="})
    assert r.status_code == 401 and r.get_json()["error"]["code"] == "missing_token"


@pytest.mark.parametrize("path", ACTION_PATHS)
def test_actions_without_a_token_are_401_and_change_nothing(client, order, path):
    before = dict(order_row(order["orderNumber"]))
    r = client.post(path, data={"note": "x"}, headers=JSON)
    assert r.status_code == 401 and r.get_json()["error"]["code"] == "missing_token"
    assert dict(order_row(order["orderNumber"])) == before


def test_every_admin_route_is_protected(app, client):
    """A route added later is covered too: everything under /admin but the login form."""
    rules = [r for r in app.url_map.iter_rules() if r.rule.startswith("/admin")]
    assert len(rules) >= 8
    for rule in rules:
        path = re.sub(r"<[^>]+>", "ORD20260101000000000001", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            r = client.open(path, method=method, headers=JSON)
            if rule.endpoint in ("admin.login_form", "admin.login"):
                assert r.status_code in (200, 403), (method, path, r.status_code)
            else:
                assert r.status_code == 401, (method, path, r.status_code)


def test_a_browser_without_a_token_gets_the_login_page_as_its_401(client):
    r = client.get("/admin/orders/ORD20260101000000000001?x=1", headers=HTML)
    assert r.status_code == 401 and r.mimetype == "text/html"
    html = r.get_data(as_text=True)
    assert 'action="/admin/login"' in html and 'name="token"' in html
    assert 'name="next" value="/admin/orders/ORD20260101000000000001?x=1"' in html
    assert_self_contained(html)


@pytest.mark.parametrize("path", ADMIN_PATHS)
def test_wrong_bearer_token_is_403(client, path):
    for headers in ({"Authorization": "Bearer not-the-token"}, {"Authorization": "Bearer "},
                    {"Authorization": f"Bearer {TOKEN}x"}):
        r = client.get(path, headers=headers)
        assert r.status_code == 403, headers
        assert r.get_json()["error"]["code"] == "forbidden"
    r = client.get(path, headers={"Authorization": "Bearer nope", **HTML})
    assert r.status_code == 403 and r.mimetype == "text/html"


def test_bearer_token_gets_in(client):
    assert client.get("/admin", headers=ADMIN).status_code == 200
    r = client.get("/admin/reports.json", headers=ADMIN)
    assert r.status_code == 200 and r.mimetype == "application/json"


def test_unset_admin_token_lets_nobody_in(make_app, sandbox):
    app = make_app(ADMIN_TOKEN="")
    c = app.test_client()
    assert c.get("/admin", headers={"Authorization": "Bearer "}).status_code == 403
    assert c.post("/admin/login", data={"token": ""}, headers=JSON).status_code == 403


# -- reports, charts, the anomaly list --------------------------------------------------------

def test_reports_json_is_all_reports(client, app, customer, order):
    mismatched_callback(client, order)
    r = client.get("/admin/reports.json", headers=ADMIN)
    data = r.get_json()
    expected = reports.all_reports(has_status_query=services.current().unitel.has_status_query)
    assert set(data) == set(expected) == {"generatedAt", "successRate", "anomalies", "delay", "pending",
                                          "reconciliation", "messages", "alert"}
    for key in ("successRate", "anomalies", "delay"):
        assert data[key] == expected[key], key
    assert data["anomalies"]["items"][0]["reason"] == "amount_mismatch"
    assert data["alert"] is True  # 1 anomaly among 1 order today is over 1 %
    assert client.get("/admin/reports.json?hours=0", headers=ADMIN).status_code == 400
    assert client.get("/admin/reports.json?days=x", headers=ADMIN).get_json()["error"]["code"] == "invalid_parameter"
    assert client.get("/admin/reports.json?hours=48&days=30", headers=ADMIN).get_json()["anomalies"]["days"] == 30


def test_page_shows_the_four_reports_as_svg_charts_and_no_alert_when_quiet(client):
    html = page(client, "/admin")
    for title in ("Recharge success rate", "Anomalies by day and reason", "Recharge delay", "Waiting for compensation"):
        assert title in html
    assert html.count("<svg") >= 5
    assert 'id="ok-banner"' in html and 'id="alert-banner"' not in html
    assert "No open anomalies." in html
    assert_self_contained(html)


def test_page_shows_an_anomaly_from_a_mismatched_callback(client, customer, order, sandbox):
    n = mismatched_callback(client, order)
    other = new_order(client, customer, phone="89123456")  # an order without anomaly: not listed
    html = page(client, "/admin")
    # The anomaly list: the order, the masked phone, its statuses and reason; never the number itself.
    rows = re.findall(r'<tr data-order="(ORD[0-9]+)">(.*?)</tr>', html, re.S)
    assert [r[0] for r in rows] == [n]
    row = rows[0][1]
    assert f'href="/admin/orders/{n}"' in row
    assert "88****88" in row and "unpaid" in row and "pending" in row and "amount_mismatch" in row
    assert "88888888" not in html and "89123456" not in html and other["orderNumber"] not in html
    # The charts: bars for the anomaly by day and reason, an ALERT (1 anomaly of 2 orders today).
    svgs = re.findall(r"<svg\b.*?</svg>", html, re.S)
    columns = [s for s in svgs if 'class="chart columns"' in s]
    assert len(columns) == 1
    bars = re.findall(r'<rect class="bar"[^>]*data-label="([^"]+)"', columns[0])
    assert len(bars) == 1 and bars[0].endswith(" amount_mismatch")
    assert 'id="alert-banner"' in html and "ALERT" in html
    assert_self_contained(html)


def test_success_rate_chart_has_a_bar_per_recharge_status(client, customer, sandbox):
    for phone, mode in (("88000001", "success"), ("88000002", "success"), ("88000003", "fail")):
        sandbox.mode(mode)
        paid_through_sandbox(client, customer, sandbox, new_order(client, customer, phone))
    html = page(client, "/admin")
    hbars = [s for s in re.findall(r"<svg\b.*?</svg>", html, re.S) if "Paid orders by recharge status" in s][0]
    labels = re.findall(r'<rect class="bar"[^>]*data-label="([^"]+)"', hbars)
    assert labels == ["success", "failed"]
    widths = [float(w) for w in re.findall(r'<rect class="bar"[^>]*width="([0-9.]+)"', hbars)]
    assert widths[0] == pytest.approx(2 * widths[1], rel=0.01)
    assert "66.67%" in html and "ALERT" in html  # below 95 %


def test_the_anomaly_list_is_newest_first_and_bounded(client, customer, sandbox, app, monkeypatch):
    from elife.ops import admin_data
    monkeypatch.setattr(admin_data, "ANOMALY_LIST_LIMIT", 3)
    numbers = []
    for i in range(5):
        numbers.append(mismatched_callback(client, new_order(client, customer, phone=f"8800000{i}")))
        time.sleep(0.002)
    items, total = admin_data.anomalies(limit=3)
    assert total == 5 and [x.order_number for x in items] == numbers[::-1][:3]
    html = page(client, "/admin")
    assert re.findall(r'<tr data-order="(ORD[0-9]+)">', html) == numbers[::-1][:3]
    assert "5 open, newest 3 shown" in html


def test_order_page_shows_details_notices_calls_and_events(client, customer, sandbox):
    sandbox.mode("drop")
    n = paid_through_sandbox(client, customer, sandbox, new_order(client, customer))
    html = page(client, f"/admin/orders/{n}")
    assert order_row(n)["anomaly_reason"] == "recharge_unknown"
    assert 'id="anomaly-details"' in html and "recharge_unknown" in html
    notices = re.search(r'<table id="payment-notices">.*?</table>', html, re.S).group(0)
    assert n in notices and "paid" in notices
    calls = re.search(r'<table id="operator-calls">.*?</table>', html, re.S).group(0)
    assert "submit" in calls and "unknown" in calls
    assert 'id="form-reconcile"' in html and 'id="form-resolve"' in html and 'id="form-refund"' not in html
    assert "88****88" in html and "88888888" not in html
    assert_self_contained(html)


def test_order_page_for_an_unknown_order_is_404(client):
    r = client.get("/admin/orders/ORD20260101000000000009", headers=ADMIN)
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "order_not_found"
    assert client.get("/admin/orders/not-an-order", headers=ADMIN).status_code == 404
    r = client.get("/admin/orders/ORD20260101000000000009", headers={**ADMIN, **HTML})
    assert r.status_code == 404 and r.mimetype == "text/html"


# -- the actions -----------------------------------------------------------------------------

def test_ask_the_operator_again_settles_an_unknown_order(client, customer, sandbox):
    sandbox.mode("drop")  # the top-up was done; the answer never came
    n = paid_through_sandbox(client, customer, sandbox, new_order(client, customer))
    assert order_row(n)["recharge_status"] == "unknown"
    sandbox.mode("success")
    r = client.post(f"/admin/orders/{n}/reconcile", data={"name": "Bat", "note": "customer called"}, headers=ADMIN)
    assert r.status_code == 303 and r.headers["Location"].startswith(f"/admin/orders/{n}?m=")
    row = order_row(n)
    assert row["recharge_status"] == "success" and row["anomaly_reason"] is None
    assert len(sandbox.submits_for(n)) == 1  # settled by asking, never by sending again
    assert operator_calls(n) == ["submit", "status"]
    [ev] = events(n)
    assert (ev["event"], ev["actor"]) == ("admin_reconcile", "admin:Bat")
    assert ev["note"].startswith("customer called\n") and "recharge success" in ev["note"]
    # The redirect's message is shown on the page it points to.
    html = page(client, r.headers["Location"])
    assert "Asked the operator again" in html and "recharge success" in html


def test_an_order_as_json_for_scripts(client, customer, sandbox):
    sandbox.mode("drop")
    n = paid_through_sandbox(client, customer, sandbox, new_order(client, customer, phone="88123456"))
    r = client.get(f"/admin/orders/{n}.json", headers=ADMIN)
    assert r.status_code == 200 and r.mimetype == "application/json"
    d = r.get_json()
    o = d["order"]
    assert (o["order_number"], o["payment_status"], o["recharge_status"], o["anomaly_reason"]) == \
        (n, "paid", "unknown", "recharge_unknown")
    assert o["phone_number"] == "88****56" and "88123456" not in r.get_data(as_text=True)
    assert Decimal(o["exchange_rate"]) == Decimal(str(order_row(n)["exchange_rate"])) and o["paid_at"].endswith("Z")
    assert [(c["kind"], c["outcome"]) for c in d["operatorCalls"]] == [("submit", "unknown")]
    assert [x["decision"] for x in d["notices"]] == ["paid"] and d["events"] == []
    assert d["actions"] == {"canReconcile": True, "canConfirm": False, "canRefund": False, "canGiveUp": False,
                            "canResolve": True}
    assert d["receipt"] is None
    assert client.get("/admin/orders/ORD20260101000000000001.json", headers=ADMIN).status_code == 404
    assert client.get(f"/admin/orders/{n}.json").status_code == 401


def test_ask_again_is_refused_when_there_is_nothing_to_ask(client, customer, order, sandbox):
    n = mismatched_callback(client, order)
    before = dict(order_row(n))
    r = client.post(f"/admin/orders/{n}/reconcile", data={}, headers={**ADMIN, **JSON})
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "not_reconcilable"
    assert dict(order_row(n)) == before and events(n) == [] and operator_calls(n) == []
    r = client.post(f"/admin/orders/{n}/reconcile", data={}, headers={**ADMIN, **HTML})
    assert r.status_code == 303  # a browser is sent back with the reason
    assert "only an unknown or processing recharge" in page(client, r.headers["Location"])


def test_refund_of_a_failed_paid_order(client, customer, sandbox):
    sandbox.mode("fail")
    sandbox.wechat_down("refund")  # the automatic refund fails: the order waits for a person
    n = paid_through_sandbox(client, customer, sandbox, new_order(client, customer))
    row = order_row(n)
    assert (row["payment_status"], row["recharge_status"], row["anomaly_reason"]) == ("paid", "failed", "refund_failed")
    html = page(client, f"/admin/orders/{n}")
    assert 'id="form-refund"' in html and 'id="form-reconcile"' not in html
    sandbox.wechat_down()
    r = client.post(f"/admin/orders/{n}/refund", data={"note": "WeChat is back"}, headers=ADMIN)
    assert r.status_code == 303
    row = order_row(n)
    assert (row["payment_status"], row["recharge_status"]) == ("refunded", "failed")
    assert row["refunded_at"] is not None and row["anomaly_reason"] is None
    assert len(sandbox.refunds()) == 1
    [ev] = events(n)
    assert (ev["event"], ev["actor"]) == ("admin_refund", "admin")
    assert ev["note"].startswith("WeChat is back\n") and "payment refunded" in ev["note"]
    # Refunded now: not offered again, and refused if asked.
    assert 'id="form-refund"' not in page(client, f"/admin/orders/{n}")
    r = client.post(f"/admin/orders/{n}/refund", data={}, headers={**ADMIN, **JSON})
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "not_refundable"
    assert len(sandbox.refunds()) == 1 and len(events(n)) == 1


def test_refund_is_refused_unless_failed_and_paid(client, customer, order, sandbox):
    n = mismatched_callback(client, order)
    assert 'id="form-refund"' not in page(client, f"/admin/orders/{n}")
    before = dict(order_row(n))
    r = client.post(f"/admin/orders/{n}/refund", data={"note": "try"}, headers={**ADMIN, **JSON})
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "not_refundable"
    assert dict(order_row(n)) == before and events(n) == [] and sandbox.refunds() == []


def lost_by_the_operator(make_app, client, customer, sandbox):
    """An order the operator has no record of after its submit and the one resubmit."""
    from elife.fulfil import recharge
    sandbox.mode("5xx")  # answered 5xx, never recorded: the status query says not found
    n = paid_through_sandbox(client, customer, sandbox, new_order(client, customer))
    with make_app(SWEEP_STUCK_SECONDS=0).app_context():
        recharge.reconcile(services.current(), n, "test")  # not found -> the one resubmit -> 5xx again
        recharge.reconcile(services.current(), n, "test")  # not found again -> a person decides
        db.session.remove()
    row = order_row(n)
    assert (row["recharge_status"], row["submit_count"], row["anomaly_reason"]) == \
        ("unknown", 2, "operator_lost_request")
    return n


def test_give_up_fails_and_refunds_an_order_the_operator_lost(make_app, client, customer, sandbox):
    n = lost_by_the_operator(make_app, client, customer, sandbox)
    html = page(client, f"/admin/orders/{n}")
    assert 'id="form-give-up"' in html and 'id="form-refund"' not in html
    sandbox.mode("success")
    r = client.post(f"/admin/orders/{n}/give-up", data={"name": "Bat", "note": "Unitel support: never arrived"},
                    headers=ADMIN)
    assert r.status_code == 303
    row = order_row(n)
    assert (row["payment_status"], row["recharge_status"], row["submit_count"]) == ("refunded", "failed", 2)
    assert row["refunded_at"] is not None and row["anomaly_reason"] is None
    [refund] = sandbox.refunds()
    assert (refund["out_trade_no"], refund["refund_fee"]) == (n, row["total_fee"])
    assert sandbox.submits_for(n) == []  # asked once more, never sent a third time
    assert operator_calls(n)[-3:] == ["status", "refund", "refund_query"]
    [ev] = events(n)
    assert (ev["event"], ev["actor"]) == ("admin_give_up", "admin:Bat")
    assert ev["note"].startswith("Unitel support: never arrived\n") and "payment refunded" in ev["note"]
    assert "Asked the operator once more" in page(client, r.headers["Location"])
    # Done: not offered again, and refused if asked.
    assert 'id="form-give-up"' not in page(client, f"/admin/orders/{n}")
    r = client.post(f"/admin/orders/{n}/give-up", data={"note": "again"}, headers={**ADMIN, **JSON})
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "not_given_up"
    assert len(sandbox.refunds()) == 1 and len(events(n)) == 1


def test_give_up_needs_a_note_and_an_order_the_operator_lost(make_app, client, customer, sandbox):
    sandbox.mode("drop")  # unclear after one submit: the machine may still resubmit, not a person's call
    n = paid_through_sandbox(client, customer, sandbox, new_order(client, customer))
    assert order_row(n)["recharge_status"] == "unknown"
    assert 'id="form-give-up"' not in page(client, f"/admin/orders/{n}")
    before = dict(order_row(n))
    r = client.post(f"/admin/orders/{n}/give-up", data={"note": "impatient"}, headers={**ADMIN, **JSON})
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "not_given_up"
    assert dict(order_row(n)) == before and events(n) == [] and sandbox.refunds() == []

    lost = lost_by_the_operator(make_app, client, customer, sandbox)
    before = dict(order_row(lost))
    r = client.post(f"/admin/orders/{lost}/give-up", data={"note": "  "}, headers={**ADMIN, **JSON})
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "missing_note"
    assert dict(order_row(lost)) == before and events(lost) == [] and sandbox.refunds() == []


def test_mark_resolved_with_a_note(client, customer, order, sandbox):
    n = mismatched_callback(client, order)
    before = dict(order_row(n))
    r = client.post(f"/admin/orders/{n}/resolve",
                    data={"name": " Bat  Erdene ", "note": "test payment by support; no money moved",
                          "reason": "amount_mismatch"}, headers=ADMIN)
    assert r.status_code == 303, r.get_data(as_text=True)
    row = order_row(n)
    assert row["anomaly_reason"] is None and row["resolved_at"] is not None
    assert row["resolved_note"] == "test payment by support; no money moved"
    assert row["anomaly_details"].startswith(before["anomaly_details"])
    last = row["anomaly_details"].splitlines()[-1]
    assert last.endswith(" resolved amount_mismatch by admin:Bat Erdene: test payment by support; no money moved")
    # A note, not a state change: statuses and version are as they were.
    for col in ("payment_status", "recharge_status", "version", "paid_at", "recharge_at"):
        assert row[col] == before[col], col
    [ev] = events(n)
    assert dict(ev) == {"event": "anomaly_resolved", "actor": "admin:Bat Erdene",
                        "note": "test payment by support; no money moved"}
    html = page(client, r.headers["Location"])
    assert "Marked resolved." in html and 'id="form-resolve"' not in html
    assert "No open anomalies." in page(client, "/admin")


def test_resolve_needs_a_note_and_an_open_anomaly(client, customer, order, sandbox):
    n = mismatched_callback(client, order)
    before = dict(order_row(n))
    for note in ("", "   "):
        r = client.post(f"/admin/orders/{n}/resolve", data={"note": note}, headers={**ADMIN, **JSON})
        assert r.status_code == 400 and r.get_json()["error"]["code"] == "missing_note"
    r = client.post(f"/admin/orders/{n}/resolve", data={"note": "x" * 1001}, headers={**ADMIN, **JSON})
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "note_too_long"
    r = client.post(f"/admin/orders/{n}/resolve", data={"note": ""}, headers={**ADMIN, **HTML})
    assert r.status_code == 303 and "write a note" in page(client, r.headers["Location"])
    assert dict(order_row(n)) == before and events(n) == []
    # The machine flagged something else since the page was loaded: nothing changes.
    r = client.post(f"/admin/orders/{n}/resolve", data={"note": "ok", "reason": "recharge_unknown"},
                    headers={**ADMIN, **JSON})
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "anomaly_changed"
    assert dict(order_row(n)) == before and events(n) == []
    assert client.post(f"/admin/orders/{n}/resolve", data={"note": "ok"}, headers=ADMIN).status_code == 303
    r = client.post(f"/admin/orders/{n}/resolve", data={"note": "again"}, headers={**ADMIN, **JSON})
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "nothing_to_resolve"
    assert len(events(n)) == 1


def test_resolve_function_is_one_conditional_update(app, client, customer, order, sandbox):
    n = mismatched_callback(client, order)
    with pytest.raises(ValueError):
        state.resolve(n, "admin", " ")
    statements = []

    def keep_updates(conn, cursor, statement, *rest):
        if statement.lstrip().upper().startswith("UPDATE"):
            statements.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", keep_updates)
    try:
        assert state.resolve(n, "admin", "done") is True
        db.session.commit()
        assert len(statements) == 1 and "anomaly_reason IS NOT NULL" in statements[0]
        assert state.resolve(n, "admin", "done again") is False
        db.session.commit()
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", keep_updates)
    assert [e["note"] for e in events(n)] == ["done"]


def test_unknown_order_action_is_404(client):
    r = client.post("/admin/orders/ORD20260101000000000009/resolve", data={"note": "x"}, headers={**ADMIN, **JSON})
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "order_not_found"


# -- the browser's login cookie, CSRF, logout --------------------------------------------------

def test_login_form_is_open_and_self_contained(client):
    r = client.get("/admin/login", headers=HTML)
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert 'name="token"' in html and 'type="password"' in html
    assert_self_contained(html)
    csp = r.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert r.headers["Cache-Control"] == "no-store"


def test_login_with_a_wrong_token_sets_no_cookie(client):
    r = login(client, token="guess")
    assert r.status_code == 403 and "not the admin token" in r.get_data(as_text=True)
    assert "Set-Cookie" not in r.headers and admin_cookie(client) is None
    r = client.post("/admin/login", data={"token": "guess"}, headers=JSON)
    assert r.status_code == 403 and r.get_json()["error"]["code"] == "forbidden"
    assert client.get("/admin", headers=HTML).status_code == 401


def test_login_sets_a_strict_httponly_signed_cookie_that_lets_the_browser_in(client):
    r = login(client, name="Bat")
    assert r.status_code == 303 and r.headers["Location"] == "/admin"
    set_cookie = r.headers["Set-Cookie"]
    assert set_cookie.startswith(f"{COOKIE}=")
    for part in ("HttpOnly", "SameSite=Strict", "Path=/admin", "Max-Age=43200"):
        assert part in set_cookie, part
    value = admin_cookie(client)
    assert TOKEN not in value
    html = page(client, "/admin", headers={"Authorization": ""})
    assert "signed in as Bat" in html and 'action="/admin/logout"' in html
    assert client.get("/admin/reports.json").status_code == 200
    # A forged or altered cookie is not a login.
    client.set_cookie(COOKIE, value[:-2] + ("AA" if not value.endswith("AA") else "BB"), path="/admin")
    assert client.get("/admin", headers=HTML).status_code == 401
    assert client.get("/admin").status_code == 401


def test_login_goes_back_where_it_was_asked_but_only_inside_admin(client):
    r = login(client, next="/admin/orders/ORD20260101000000000001")
    assert r.headers["Location"] == "/admin/orders/ORD20260101000000000001"
    for bad in ("https://evil.example/admin", "//evil.example/admin", "/admin/../health", "/health",
                "/admin\\@evil.example", "/adminx"):
        r = login(client, next=bad)
        assert r.status_code == 303 and r.headers["Location"] == "/admin", bad


def test_cookie_expires_after_12_hours(client, monkeypatch):
    login(client)
    assert client.get("/admin").status_code == 200
    real = TimestampSigner.get_timestamp
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: real(self) - 12 * 3600 - 5)
    login(client)  # issued 12 h and 5 s ago
    monkeypatch.setattr(TimestampSigner, "get_timestamp", real)
    assert client.get("/admin").status_code == 401


def test_cookie_from_before_the_admin_token_changed_is_refused(make_app, sandbox):
    first = make_app().test_client()
    login(first)
    value = admin_cookie(first)
    second = make_app(ADMIN_TOKEN="a-new-admin-token").test_client()
    second.set_cookie(COOKIE, value, path="/admin")
    assert second.get("/admin").status_code == 401


def test_a_wrong_bearer_token_is_403_even_with_a_good_cookie(client):
    login(client)
    assert client.get("/admin", headers={"Authorization": "Bearer wrong"}).status_code == 403


def test_cookie_posts_need_the_csrf_token(client, customer, order, sandbox):
    n = mismatched_callback(client, order)
    login(client, name="Bat")
    html = page(client, f"/admin/orders/{n}", headers={"Authorization": ""})
    token = csrf_from(html)
    before = dict(order_row(n))
    for data in ({"note": "no token"}, {"note": "bad token", "csrf_token": "x"},
                 {"note": "altered", "csrf_token": token[:-2] + "xx"}):
        r = client.post(f"/admin/orders/{n}/resolve", data=data, headers=JSON)
        assert r.status_code == 403 and r.get_json()["error"]["code"] == "csrf_failed", data
    r = client.post(f"/admin/orders/{n}/resolve", data={"note": "x"}, headers=HTML)
    assert r.status_code == 403 and r.mimetype == "text/html"
    # A token made for another login does not fit this one.
    other = client.application.test_client()
    login(other)
    other_token = csrf_from(page(other, f"/admin/orders/{n}", headers={"Authorization": ""}))
    r = client.post(f"/admin/orders/{n}/resolve", data={"note": "x", "csrf_token": other_token}, headers=JSON)
    assert r.status_code == 403
    assert dict(order_row(n)) == before and events(n) == []
    # With the page's token: done, and the name given at login is the actor.
    r = client.post(f"/admin/orders/{n}/resolve",
                    data={"note": "checked with WeChat", "csrf_token": token, "name": "Bat",
                          "reason": "amount_mismatch"}, headers=HTML)
    assert r.status_code == 303
    assert order_row(n)["anomaly_reason"] is None
    assert [(e["event"], e["actor"]) for e in events(n)] == [("anomaly_resolved", "admin:Bat")]


def test_logout_clears_the_cookie(client):
    login(client)
    token = csrf_from(page(client, "/admin", headers={"Authorization": ""}))
    assert client.post("/admin/logout", data={}, headers=JSON).status_code == 403  # CSRF here too
    r = client.post("/admin/logout", data={"csrf_token": token}, headers=HTML)
    assert r.status_code == 303 and r.headers["Location"] == "/admin/login"
    assert f"{COOKIE}=;" in r.headers["Set-Cookie"] and "Path=/admin" in r.headers["Set-Cookie"]
    assert admin_cookie(client) is None
    assert client.get("/admin", headers=HTML).status_code == 401


def test_logout_ends_the_session_for_every_copy_of_the_cookie(client):
    """Issue 16, finding 8: a copied cookie (another browser, a stolen one) dies with the
    logout, not 12 hours later."""
    login(client, name="Bat")
    value = admin_cookie(client)
    thief = client.application.test_client()
    thief.set_cookie(COOKIE, value, path="/admin")
    assert thief.get("/admin/reports.json").status_code == 200
    with db.engine.connect() as c:
        assert c.execute(sa.text("SELECT actor FROM admin_sessions")).scalars().all() == ["admin:Bat"]
    token = csrf_from(page(client, "/admin", headers={"Authorization": ""}))
    assert client.post("/admin/logout", data={"csrf_token": token}, headers=HTML).status_code == 303
    assert thief.get("/admin/reports.json").status_code == 401
    assert thief.get("/admin", headers=HTML).status_code == 401
    with db.engine.connect() as c:
        assert c.execute(sa.text("SELECT COUNT(*) FROM admin_sessions")).scalar() == 0
    # Logging in again is a new session; the old cookie stays dead.
    login(client)
    assert client.get("/admin/reports.json").status_code == 200
    assert thief.get("/admin/reports.json").status_code == 401


def _set_cookie_after_login(app, headers=None, **environ):
    r = app.test_client().post("/admin/login", data={"token": TOKEN}, headers={**HTML, **(headers or {})},
                               **environ)
    assert r.status_code == 303, r.data[:300]
    return r.headers["Set-Cookie"]


def test_the_cookie_is_secure_in_production_whatever_the_request_says(make_app, sandbox, settings_env):
    sandbox_base = f"http://127.0.0.1:{settings_env['SANDBOX_PORT']}"
    production = make_app(ELIFE_ENV="production", SECRET_KEY="s" * 40, ADMIN_TOKEN=TOKEN + "-" * 20,
                          WECHAT_APPID="wx", WECHAT_MCH_ID="1", WECHAT_ENV_ID="e",
                          WECHAT_API_BASE=f"{sandbox_base}/wechat", UNITEL_API_URL=f"{sandbox_base}/unitel",
                          UNITEL_USERNAME="u", UNITEL_PASSWORD="p")
    r = production.test_client().post("/admin/login", data={"token": TOKEN + "-" * 20}, headers=HTML)
    assert r.status_code == 303 and "Secure" in r.headers["Set-Cookie"]
    r = production.test_client().post("/admin/login", data={"token": TOKEN + "-" * 20},
                                      headers={**HTML, "X-Forwarded-Proto": "http"})
    assert "Secure" in r.headers["Set-Cookie"]


def test_outside_production_a_client_header_does_not_decide_secure(make_app, sandbox):
    plain = make_app()
    assert "Secure" not in _set_cookie_after_login(plain)
    assert "Secure" not in _set_cookie_after_login(plain, headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in _set_cookie_after_login(plain, base_url="https://localhost")
    # Behind a trusted proxy, the scheme it saw.
    proxied = make_app(TRUSTED_PROXY_COUNT=1)
    assert "Secure" in _set_cookie_after_login(proxied, headers={"X-Forwarded-Proto": "https"})


def test_a_message_in_the_url_must_be_signed_by_us(client, customer, order, sandbox):
    n = mismatched_callback(client, order)
    html = page(client, f"/admin/orders/{n}?m=Call+this+number+now")
    assert "Call this number now" not in html and 'class="msg' not in html


# -- what the page costs on a big table (MariaDB's optimizer) ----------------------------------

EXPLAIN_ROWS = 20000


@mysql_only
def test_admin_queries_use_indexes(client, customer, order, sandbox):
    """The anomaly list and an order's page walk indexes, never the whole table."""
    from elife.ops import admin_data
    n = mismatched_callback(client, order)
    with db.engine.begin() as c:
        uid = c.execute(sa.text("SELECT user_id FROM orders WHERE order_number = :n"), {"n": n}).scalar()
        c.execute(sa.text(f"""
            INSERT INTO orders (order_number, user_id, phone_number, product_operator, recharge_type,
                product_code, product_price_tg, product_price_rmb, total_fee, exchange_rate,
                payment_status, recharge_status, anomaly_reason, created_at, updated_at, version)
            SELECT CONCAT('ORD', LPAD(seq, 20, '0')), {uid}, '88000000', 'UNITEL', 'VOICE', '5000',
                5000, 10.50, 1050, 0.0021, 'paid', 'success',
                CASE WHEN seq % 1000 = 0 THEN 'recharge_unknown' END,
                NOW() - INTERVAL (seq % 300) DAY, NOW(), 1
            FROM seq_1_to_{EXPLAIN_ROWS}"""))
        for t in ("orders", "payment_notices", "operator_calls", "order_events"):
            c.execute(sa.text(f"ANALYZE TABLE {t}"))
    sent = []

    def keep(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            sent.append((statement, parameters))

    sa.event.listen(db.engine, "before_cursor_execute", keep)
    try:
        items, total = admin_data.anomalies()
        detail = admin_data.order_detail(n, status_query=True)
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", keep)
    assert total == EXPLAIN_ROWS // 1000 + 1 and items[0].order_number == n
    assert detail["order"].order_number == n and len(detail["notices"]) == 1
    assert len(sent) == 7  # the anomaly list (2), the order, its notices, calls, events, messages
    raw = db.engine.raw_connection()
    try:
        cur = raw.cursor()
        for statement, params in sent:
            cur.execute("EXPLAIN " + statement, params)
            cols = [d[0] for d in cur.description]
            for step in (dict(zip(cols, row)) for row in cur.fetchall()):
                assert step["type"] != "ALL" and step["key"], (statement, step)
                assert int(step["rows"] or 0) < EXPLAIN_ROWS / 20, (statement, step)
    finally:
        raw.close()


@pytest.mark.parametrize("value", ["²", "５", "-1", "0", "99999999999999999999"])
def test_report_windows_must_be_plain_numbers(client, value):
    r = client.get(f"/admin/reports.json?hours={value}", headers={"Authorization": "Bearer test-admin-token"})
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "invalid_parameter"
