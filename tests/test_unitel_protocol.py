"""Unitel's real protocol (issue 18), against the sandbox over HTTP and the real database.

What the fake operator received for every endpoint; a token that expires (one top-up, no
failure); every definite refusal failed and refunded; unclear answers with a status query
and without one (UNITEL_STATUS_PATH=none: flagged for a person, never sent again, settled
by the admin's "mark delivered" or "fail and refund"); the live price list at POST /orders
(a moved price, a package the number cannot buy, an operator that cannot be asked); the
VAT e-receipt; vatRegisterNo; and `flask elife product sync`.
"""
import json
import threading

import pytest
import requests
import sqlalchemy as sa

from conftest import SEED_ORDER, login, order_row, row_counts
from elife import services
from elife.clients import unitel
from elife.extensions import db
from elife.fulfil import state, sweep
from elife.models import OrderEvent, Product
from elife.ops import reports
from elife.timeutil import utcnow

OK = {"errcode": 0, "errmsg": "OK"}
ADMIN = {"Authorization": "Bearer test-admin-token", "Accept": "application/json"}


# -- helpers -----------------------------------------------------------------------------------

def create(client, headers, **changes):
    return client.post("/orders", json={**SEED_ORDER, **changes}, headers=headers)


def new_order(client, headers, **changes):
    r = create(client, headers, **changes)
    assert r.status_code == 201, r.get_json()
    return r.get_json()["orderNumber"]


def pay(client, sandbox, headers, n):
    """The customer pays in the sandbox; WeChat's notice reaches this app's callback."""
    r = client.post("/payment/create", json={"orderNumber": n}, headers=headers)
    assert r.status_code == 200, r.get_json()
    assert sandbox.pay(n, notify=False).status_code == 200
    notice = sandbox.notice(n)
    r = client.post(notice["path"], headers=notice["headers"], data=json.dumps(notice["body"]))
    assert (r.status_code, r.get_json()) == (200, OK)
    return client.get(f"/orders/{n}", headers=headers).get_json()


def paid_order(client, sandbox, headers, mode="success", **changes):
    n = new_order(client, headers, **changes)
    sandbox.mode(mode, msisdn=changes.get("phoneNumber", SEED_ORDER["phoneNumber"]))
    return n, pay(client, sandbox, headers, n)


def calls(sandbox, path):
    return [c for c in sandbox.calls() if c["path"] == path]


def log_lines(log_dir, key, n=None):
    text = (log_dir / "combined.log").read_text(encoding="utf-8")
    return [ln for ln in text.splitlines() if f"event={key} " in ln + " " and (n is None or f"order={n}" in ln)]


def kinds(n):
    with db.engine.connect() as c:
        return [tuple(r) for r in c.execute(sa.text(
            "SELECT kind, outcome FROM operator_calls WHERE order_number = :n ORDER BY id"), {"n": n})]


def refunds_for(sandbox, n):
    return [r for r in sandbox.refunds() if r["out_trade_no"] == n]


@pytest.fixture
def none_app(app, make_app):
    """The app as in production: no status query (the database as `app` left it)."""
    return make_app(UNITEL_STATUS_PATH="none")


@pytest.fixture
def none_client(none_app):
    return none_app.test_client()


# -- the wire format ----------------------------------------------------------------------------

def test_every_endpoint_as_the_sandbox_received_it(client, sandbox, customer, ctx):
    unitel.UnitelClient.forget_token()  # so that this test sees the login too
    voice, seen = paid_order(client, sandbox, customer, phoneNumber="88990001")
    assert seen["rechargeStatus"] == "success"
    data, seen = paid_order(client, sandbox, customer, phoneNumber="88990002", rechargeType="DATA",
                            productCode="DATA1GB")
    assert seen["rechargeStatus"] == "success"

    [auth] = calls(sandbox, "/auth")
    assert (auth["auth"], auth["body"], auth["status"]) == ("basic:sandbox", None, 200)
    lists = calls(sandbox, "/service/servicetype")
    assert [(c["body"], c["auth"]) for c in lists] == [({"msisdn": "88990001", "info": "1"}, "bearer"),
                                                      ({"msisdn": "88990002", "info": "1"}, "bearer")]
    [recharge] = calls(sandbox, "/service/recharge")
    assert recharge["body"] == {
        "msisdn": "88990001", "card": "SD5000", "vatflag": "1", "vat_register_no": "",
        "transactions": [{"journal_id": voice, "amount": "5000", "description": f"eLife top-up {voice}",
                          "account": unitel.ACCOUNT}]}
    [package] = calls(sandbox, "/service/datapackage")
    assert package["body"]["package"] == "data1gb7d" and "card" not in package["body"]
    assert package["body"]["transactions"][0] == {"journal_id": data, "amount": "3000",
                                                  "description": f"eLife top-up {data}", "account": unitel.ACCOUNT}
    # The sandbox's log, which other tests and scripts read: requestId is our journal_id.
    log = sandbox.log()
    assert [(e["requestId"], e["msisdn"], e.get("card"), e.get("package")) for e in log] == [
        (voice, "88990001", "SD5000", None), (data, "88990002", None, "data1gb7d")]
    # The status query (development): {"journal_id"} at UNITEL_STATUS_PATH.
    answer = unitel.UnitelClient(client.application.config["SETTINGS"]).status(voice)
    assert (answer.outcome, answer.code) == (unitel.SUCCESS, "000") and answer.receipt is not None
    [status] = calls(sandbox, "/service/status")
    assert (status["body"], status["status"]) == ({"journal_id": voice}, 200)
    assert all(c["auth"] == "bearer" for c in sandbox.calls() if c["path"] != "/auth")


def test_the_catalogue_shows_names_and_days(client):
    items = {p["productCode"]: p for p in client.get("/products").get_json()["products"]}
    assert {k: items["5000"][k] for k in ("name", "engName", "days", "data")} == \
        {"name": "Unitel voice credit 5,000₮", "engName": "Credit 5,000₮", "days": 30, "data": None}
    assert {k: items["DATA5GB"][k] for k in ("engName", "days", "data")} == \
        {"engName": "Data 5 GB, 30 days", "days": 30, "data": "5GB"}


# -- the token ------------------------------------------------------------------------------------

def test_an_expired_token_costs_one_new_login_not_a_second_topup(client, sandbox, customer, ctx, log_dir):
    n = new_order(client, customer)
    unitel.UnitelClient.forget_token()
    sandbox.mode("success")
    # A token from before the expiry, as a long-running worker holds it.
    unitel.UnitelClient(client.application.config["SETTINGS"]).packages("88888888")
    before = len(sandbox.calls())
    sandbox.expire_tokens()

    seen = pay(client, sandbox, customer, n)

    assert seen["rechargeStatus"] == "success" and seen["receipt"] is not None
    assert [e["requestId"] for e in sandbox.log()] == [n], "one top-up"
    after = [(c["path"], c["status"]) for c in sandbox.calls()[before:]]
    assert after == [("/service/recharge", 401), ("/auth", 200), ("/service/recharge", 200)]
    assert kinds(n) == [("submit", "success")]
    assert len(log_lines(log_dir, "unitel_token_refused", n)) == 1


def test_threads_share_one_token_and_renew_it_once(app, sandbox):
    settings = app.config["SETTINGS"]
    unitel.UnitelClient(settings).packages("88888888")  # a token every thread now shares
    sandbox.expire_tokens()
    before = len(calls(sandbox, "/auth"))
    gate = threading.Barrier(6)
    got, errors = [], []

    def ask():
        try:
            gate.wait(10)
            got.append(len(unitel.UnitelClient(settings).packages("88888888")[1]))
        except Exception as exc:  # noqa: BLE001 -- reported below
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert errors == [] and len(got) == 6 and min(got) > 0
    assert len(calls(sandbox, "/auth")) == before + 1, "one login for the whole process"


# -- definite refusals ----------------------------------------------------------------------------

@pytest.mark.parametrize("code", sorted(unitel.REFUSALS))
def test_each_refusal_fails_and_refunds_once(client, sandbox, customer, ctx, code):
    phone = "88990010"
    n = new_order(client, customer, phoneNumber=phone)
    requests.post(f"{sandbox.url}/unitel/_mode", json={"mode": "fail", "msisdn": phone, "code": code},
                  timeout=5).raise_for_status()
    seen = pay(client, sandbox, customer, n)
    assert (seen["paymentStatus"], seen["rechargeStatus"], seen["receipt"]) == ("refunded", "failed", None)
    [refund] = refunds_for(sandbox, n)
    assert (refund["refund_fee"], refund["requests"]) == (order_row(n)["total_fee"], 1)
    # the refund query that confirmed the money went back ends the trail
    assert kinds(n) == [("submit", "failed"), ("refund", "success"), ("refund_query", "success")]
    assert order_row(n)["anomaly_reason"] is None


def test_a_price_moved_after_the_order_is_refused_by_the_operator_and_refunded(client, sandbox, customer, ctx):
    """The order keeps the price it was created with and sends it; the operator refuses a
    price that is no longer its own (103), and one it no longer offers the number (102)."""
    moved = new_order(client, customer, phoneNumber="88990011")
    gone = new_order(client, customer, phoneNumber="88990012")
    sandbox.price("SD5000", 5500, msisdn="88990011")
    sandbox.price("SD5000", None, msisdn="88990012")
    for n in (moved, gone):
        seen = pay(client, sandbox, customer, n)
        assert (seen["paymentStatus"], seen["rechargeStatus"], seen["productPriceTg"]) == ("refunded", "failed", 5000)
    assert [(e["requestId"], e["amount"]) for e in sandbox.log()] == [(moved, "5000"), (gone, "5000")]
    with db.engine.connect() as c:
        answers = dict(c.execute(sa.text("SELECT order_number, answer FROM operator_calls WHERE kind = 'submit'")).all())
    assert answers[moved].startswith("103 ") and answers[gone].startswith("102 ")


# -- unclear answers, both ways ---------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["timeout", "drop", "unknown", "5xx"])
def test_unclear_with_a_status_query_is_settled_by_asking(app, client, sandbox, customer, make_app, mode):
    n, seen = paid_order(client, sandbox, customer, mode, phoneNumber="88990020")
    assert seen["rechargeStatus"] == "unknown"
    sandbox.mode("success", msisdn="88990020")
    eager = make_app(SWEEP_STUCK_SECONDS=0)
    with eager.app_context():
        assert order_row(n)["anomaly_reason"] == "recharge_unknown"
        sweep.run(services.current())
        row = order_row(n)
        assert (row["recharge_status"], row["anomaly_reason"]) == ("success", None)
        assert row["receipt_lottery"]
        # 5xx never reached the operator: the one resubmit; otherwise settled by asking.
        assert len(sandbox.submits_for(n)) == 1
        assert ("status", "not_found" if mode == "5xx" else "success") in kinds(n)
    assert calls(sandbox, "/service/status")


@pytest.mark.parametrize("mode", ["timeout", "drop", "unknown", "5xx"])
def test_unclear_without_a_status_query_is_flagged_and_never_sent_again(
        none_app, none_client, sandbox, make_app, ctx, mode, log_dir):
    headers = login(none_client, "no-status-query")
    n, seen = paid_order(none_client, sandbox, headers, mode, phoneNumber="88990021")
    assert seen["rechargeStatus"] == "unknown"
    with none_app.app_context():
        row = order_row(n)
    assert (row["payment_status"], row["recharge_status"], row["anomaly_reason"]) == \
        ("paid", "unknown", state.CONFIRM)
    details = row["anomaly_details"]
    assert f"sent POST /service/recharge card=SD5000 amount=5000 journal_id={n} msisdn=88****21;" in details
    assert "came back: " in details and " ms." in details and "88990021" not in details
    assert "confirm with Unitel, then mark delivered or fail and refund" in details

    sandbox.mode("success", msisdn="88990021")  # a resubmit now would go through
    submits = len(sandbox.submits_for(n))
    eager = make_app(UNITEL_STATUS_PATH="none", SWEEP_STUCK_SECONDS=0)
    with eager.app_context():
        for _ in range(3):
            summary = sweep.run(services.current())
        assert len(sandbox.submits_for(n)) == submits, "never sent again"
        assert calls(sandbox, "/service/status") == [], "no status query is asked"
        assert kinds(n) == [("submit", "unknown")]
        assert summary.unconfirmed == 1 and "unconfirmed=1" in summary.line()
        assert "unknown" not in summary.by_selection
        rep = reports.all_reports(has_status_query=services.current().unitel.has_status_query)
        assert rep["pending"]["unconfirmedCount"] == 1 and rep["pending"]["alert"] is True
    assert log_lines(log_dir, "awaiting_confirmation")


def test_a_worker_dead_mid_submit_without_a_status_query_goes_to_a_person(none_app, none_client, sandbox, make_app):
    headers = login(none_client, "dead-worker")
    n = new_order(none_client, headers, phoneNumber="88990022")
    sandbox.pay(n, notify=False)
    with none_app.app_context():
        with db.engine.begin() as c:  # claimed, and its worker killed before the answer
            c.execute(sa.text("UPDATE orders SET payment_status = 'paid', paid_at = :t, recharge_status = "
                              "'processing', recharge_at = :t, submit_count = 1, version = version + 2 "
                              "WHERE order_number = :n"), {"t": utcnow(), "n": n})
    with make_app(UNITEL_STATUS_PATH="none", SWEEP_STUCK_SECONDS=0).app_context():
        sweep.run(services.current())
        row = order_row(n)
    assert (row["recharge_status"], row["anomaly_reason"], row["submit_count"]) == ("unknown", state.CONFIRM, 1)
    assert "no answer recorded" in row["anomaly_details"]
    assert sandbox.submits_for(n) == [] and calls(sandbox, "/service/status") == []


def _unconfirmed_order(none_client, sandbox, phone):
    headers = login(none_client, f"unconfirmed-{phone}")
    n, seen = paid_order(none_client, sandbox, headers, "drop", phoneNumber=phone)
    assert seen["rechargeStatus"] == "unknown"
    return n, headers


def test_the_admin_marks_an_unconfirmed_order_delivered(none_app, none_client, sandbox, log_dir):
    n, headers = _unconfirmed_order(none_client, sandbox, "88990023")
    html = none_client.get(f"/admin/orders/{n}", headers={"Authorization": ADMIN["Authorization"]}).get_data(
        as_text=True)
    assert "confirm with Unitel, then mark delivered or fail and refund" in html
    assert 'id="form-mark-delivered"' in html and 'id="form-fail-refund"' in html
    assert 'id="form-reconcile"' not in html
    d = none_client.get(f"/admin/orders/{n}.json", headers=ADMIN).get_json()
    assert d["actions"]["canConfirm"] is True and d["actions"]["canReconcile"] is False
    # Nothing to ask: the reconcile action says so.
    r = none_client.post(f"/admin/orders/{n}/reconcile", data={"note": "x"}, headers=ADMIN)
    assert (r.status_code, r.get_json()["error"]["code"]) == (409, "not_reconcilable")
    # A note is required, and nothing changes without it.
    r = none_client.post(f"/admin/orders/{n}/mark-delivered", data={"note": " "}, headers=ADMIN)
    assert (r.status_code, r.get_json()["error"]["code"]) == (400, "missing_note")
    with none_app.app_context():
        assert order_row(n)["recharge_status"] == "unknown"

    r = none_client.post(f"/admin/orders/{n}/mark-delivered",
                         data={"note": "Unitel (Bold, ops desk) confirms journal id done", "name": "Saraa"},
                         headers=ADMIN)
    assert r.status_code == 303
    seen = none_client.get(f"/orders/{n}", headers=headers).get_json()
    assert (seen["paymentStatus"], seen["rechargeStatus"]) == ("paid", "success")
    with none_app.app_context():
        row = order_row(n)
        [ev] = db.session.execute(sa.select(OrderEvent).where(OrderEvent.order_number == n)).scalars().all()
    assert row["anomaly_reason"] is None and row["recharged_at"] is not None
    assert (ev.event, ev.actor) == ("admin_mark_delivered", "admin:Saraa")
    assert ev.note.startswith("Unitel (Bold, ops desk) confirms") and "recharge success" in ev.note
    assert len(log_lines(log_dir, "confirmed_delivered", n)) == 1
    assert len(sandbox.submits_for(n)) == 1 and refunds_for(sandbox, n) == []
    # Done: both actions are refused now.
    for action in ("mark-delivered", "fail-refund"):
        r = none_client.post(f"/admin/orders/{n}/{action}", data={"note": "again"}, headers=ADMIN)
        assert (r.status_code, r.get_json()["error"]["code"]) == (409, "not_unconfirmed")


def test_the_admin_fails_and_refunds_an_unconfirmed_order(none_app, none_client, sandbox, log_dir):
    n, headers = _unconfirmed_order(none_client, sandbox, "88990024")
    r = none_client.post(f"/admin/orders/{n}/fail-refund", data={"note": "Unitel: journal id never arrived"},
                         headers=ADMIN)
    assert r.status_code == 303
    seen = none_client.get(f"/orders/{n}", headers=headers).get_json()
    assert (seen["paymentStatus"], seen["rechargeStatus"]) == ("refunded", "failed")
    [refund] = refunds_for(sandbox, n)
    assert refund["requests"] == 1
    with none_app.app_context():
        assert order_row(n)["anomaly_reason"] is None
        events = [e.event for e in db.session.execute(
            sa.select(OrderEvent).where(OrderEvent.order_number == n)).scalars()]
    assert events == ["admin_fail_refund"]
    assert len(log_lines(log_dir, "confirmed_failed", n)) == 1
    assert len(sandbox.submits_for(n)) == 1


def test_with_a_status_query_the_confirm_actions_are_refused(client, sandbox, customer, ctx):
    n, seen = paid_order(client, sandbox, customer, "drop", phoneNumber="88990025")
    r = client.post(f"/admin/orders/{n}/mark-delivered", data={"note": "x"}, headers=ADMIN)
    assert (r.status_code, r.get_json()["error"]["code"]) == (409, "not_unconfirmed")
    assert order_row(n)["recharge_status"] == "unknown"


# -- the live price list at POST /orders ------------------------------------------------------------

def test_a_moved_price_is_409_price_changed_and_creates_nothing(client, sandbox, customer, ctx, log_dir):
    sandbox.price("SD5000", 5500)
    before = row_counts()["orders"]
    r = create(client, customer, phoneNumber="88990030")
    assert r.status_code == 409
    err = r.get_json()["error"]
    assert (err["code"], err["details"]) == ("price_changed", {"priceTg": 5500, "previousPriceTg": 5000})
    assert row_counts()["orders"] == before
    assert log_lines(log_dir, "price_changed")
    # Another product of the same list still sells.
    assert create(client, customer, phoneNumber="88990030", productCode="1000").status_code == 201


def test_a_package_the_number_cannot_buy_is_400(client, sandbox, customer, ctx):
    sandbox.price("SD5000", None, msisdn="88990031")
    r = create(client, customer, phoneNumber="88990031")
    assert (r.status_code, r.get_json()["error"]["code"]) == (400, "product_unavailable_for_number")
    assert create(client, customer, phoneNumber="88990032").status_code == 201


def test_the_list_is_cached_in_the_database_for_every_worker(client, make_app, sandbox, customer, ctx):
    n = new_order(client, customer, phoneNumber="88990033")
    other_worker = make_app().test_client()
    assert new_order(other_worker, login(other_worker, "second-worker"), phoneNumber="88990033")
    assert len(calls(sandbox, "/service/servicetype")) == 1, "asked once for both"
    # While it is fresh a moved price is not seen; once it is stale, it is.
    sandbox.price("SD5000", 5500)
    assert create(client, customer, phoneNumber="88990033").status_code == 201
    fresh = make_app(UNITEL_PRICE_CACHE_SECONDS=0).test_client()
    r = create(fresh, login(fresh, "fresh"), phoneNumber="88990033")
    assert (r.status_code, r.get_json()["error"]["code"]) == (409, "price_changed")
    assert order_row(n)["product_price_tg"] == 5000 and order_row(n)["operator_code"] == "SD5000"


@pytest.mark.parametrize("how", ["5xx", "timeout", "drop", "fail", "unreachable"])
def test_an_operator_that_cannot_be_asked_falls_back_to_our_price(make_app, app, sandbox, log_dir, how):
    if how == "unreachable":
        from conftest import free_port
        shop = make_app(UNITEL_API_URL=f"http://127.0.0.1:{free_port()}/unitel")
    else:
        sandbox.servicetype_mode(how)
        shop = make_app(UNITEL_PRICE_TIMEOUT=0.3)
    client = shop.test_client()
    r = create(client, login(client, f"fallback-{how}"), phoneNumber="88990034")
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["productPriceTg"] == 5000
    assert [ln for ln in log_lines(log_dir, "live_price_unavailable") if "88****34" in ln]
    with shop.app_context():
        assert row_counts()["operator_price_lists"] == 0, "nothing cached from a failed ask"


# -- the receipt and vatRegisterNo ------------------------------------------------------------------

def test_a_paid_order_comes_back_with_its_receipt(client, sandbox, customer, ctx):
    n = new_order(client, customer, phoneNumber="88990040", vatRegisterNo="1234567")
    before = client.get(f"/orders/{n}", headers=customer).get_json()
    assert (before["receipt"], before["vatRegisterNo"]) == (None, "1234567")
    seen = pay(client, sandbox, customer, n)
    receipt = seen["receipt"]
    assert set(receipt) == {"billId", "lottery", "qrData", "amount", "vat"}
    assert (receipt["amount"], receipt["vat"]) == ("5000.00", "454.55")
    assert receipt["lottery"] and receipt["billId"] and receipt["qrData"]
    assert calls(sandbox, "/service/recharge")[0]["body"]["vat_register_no"] == "1234567"
    listed = client.get("/orders", headers=customer).get_json()["orders"]
    assert [o["receipt"] for o in listed if o["orderNumber"] == n] == [receipt]
    html = client.get(f"/admin/orders/{n}", headers={"Authorization": ADMIN["Authorization"]}).get_data(as_text=True)
    assert receipt["lottery"] in html and receipt["billId"] in html
    assert client.get(f"/admin/orders/{n}.json", headers=ADMIN).get_json()["receipt"] == receipt


def test_without_the_vat_flag_no_receipt_is_asked_for(make_app, app, sandbox):
    shop = make_app(UNITEL_VAT_FLAG="0", UNITEL_VAT_REGISTER_NO="7654321")
    client = shop.test_client()
    headers = login(client, "no-vat")
    n = new_order(client, headers, phoneNumber="88990041")
    seen = pay(client, sandbox, headers, n)
    assert (seen["rechargeStatus"], seen["receipt"]) == ("success", None)
    body = calls(sandbox, "/service/recharge")[0]["body"]
    assert (body["vatflag"], body["vat_register_no"]) == ("0", "7654321")


@pytest.mark.parametrize("value, code", [
    ("123456", "invalid_vat_register_no"), ("12345678", "invalid_vat_register_no"),
    ("AB12345678", "invalid_vat_register_no"),          # Latin letters
    ("УБ1234567", "invalid_vat_register_no"), ("УБ123456789", "invalid_field"),  # 11: too long
    ("１２３４５６７", "invalid_vat_register_no"),            # full-width digits
    ("123 4567", "invalid_vat_register_no"), ("1234567'--", "invalid_vat_register_no"),
    ("x" * 11, "invalid_field"), (1234567, "invalid_field"), (["1234567"], "invalid_field"),
    ("1234567\n", None), ("\x001234567", "invalid_field"),
])
def test_a_bad_vat_register_no_is_400_and_stores_nothing(client, customer, ctx, value, code):
    before = row_counts()
    r = create(client, customer, vatRegisterNo=value)
    if code is None:  # surrounding whitespace is trimmed: fine
        assert r.status_code == 201 and r.get_json()["vatRegisterNo"] == "1234567"
        return
    assert (r.status_code, r.get_json()["error"]["code"]) == (400, code)
    assert row_counts() == {**before, "rate_limits": row_counts()["rate_limits"]}


@pytest.mark.parametrize("value, stored", [("1234567", "1234567"), ("уб12345678", "УБ12345678"),
                                           ("ӨҮ99010112", "ӨҮ99010112"), ("", None), (None, None)])
def test_good_vat_register_numbers(client, customer, ctx, value, stored):
    r = create(client, customer, vatRegisterNo=value)
    assert r.status_code == 201 and r.get_json()["vatRegisterNo"] == stored


# -- flask elife product sync ------------------------------------------------------------------------

def sync(app, *args):
    return app.test_cli_runner().invoke(args=["elife", "product", "sync", *args])


def products():
    with db.engine.connect() as c:
        return {(r.recharge_type, r.product_code): r for r in c.execute(sa.select(Product.__table__))}


def test_product_sync_shows_the_difference_and_apply_writes_it(app, client, sandbox, ctx):
    sandbox.price("SD5000", 5500)
    sandbox.price("data20gb30d", None, msisdn="88990050")
    before = products()
    r = sync(app, "--msisdn", "88990050")
    assert r.exit_code == 2, r.output
    out = r.stdout
    assert "Unitel's list for 88****50 (PREPAID)" in out
    assert "+ VOICE ND500 (ND500)" in out and "+ DATA  data3gb2d (data3gb2d)" in out
    assert "~ VOICE 5000 (SD5000)" in out and "price_tg: 5000 -> 5500" in out
    assert "name: 'Unitel voice credit 5,000₮' -> 'Нэгж 5,000₮'" in out
    assert "- DATA  DATA20GB (data20gb30d)" in out
    assert "4 new, 8 changed, 0 the same, 1 of ours not in this list, 0 skipped; nothing written" in out
    assert products() == before, "nothing written without --apply"

    r = sync(app, "--msisdn", "88990050", "--apply")
    assert r.exit_code == 0, r.output
    assert "written: 4 added, 8 updated" in r.stdout
    after = products()
    assert after[("VOICE", "5000")].price_tg == 5500 and after[("VOICE", "5000")].name == "Нэгж 5,000₮"
    new = after[("DATA", "data3gb2d")]
    assert (new.operator_code, new.price_tg, new.days, new.data, new.is_active) == ("data3gb2d", 2500, 2, "3GB", True)
    assert after[("DATA", "DATA20GB")].is_active, "missing from one number's list: left as it is"
    # The catalogue shows it, priced in CNY at the rate; the next order sells at the new price.
    items = {p["productCode"]: p for p in client.get("/products").get_json()["products"]}
    assert (items["5000"]["priceTg"], items["5000"]["totalFee"]) == (5500, 1155)
    assert items["data3gb2d"]["engName"] == "Data 3 GB, 2 days"
    headers = login(client, "after-sync")
    r = create(client, headers, phoneNumber="88990051")
    assert r.status_code == 201 and r.get_json()["productPriceTg"] == 5500
    r = create(client, headers, phoneNumber="88990051", rechargeType="DATA", productCode="data3gb2d")
    assert r.status_code == 201, r.get_json()
    # In step now with that number's list.
    r = sync(app, "--msisdn", "88990050")
    assert r.exit_code == 0 and "0 new, 0 changed, 12 the same, 1 of ours not in" in r.stdout, r.output


def test_product_sync_refuses_a_bad_number_and_an_unreachable_operator(app, make_app, sandbox, ctx):
    r = sync(app, "--msisdn", "99112233")
    assert r.exit_code == 1 and "Mobicom" in r.stderr
    sandbox.servicetype_mode("5xx")
    r = sync(app, "--msisdn", "88990052")
    assert r.exit_code == 1 and "could not be asked" in r.stderr
    assert products() and all(p.operator_code for p in products().values())
