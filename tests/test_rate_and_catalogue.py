"""The rate and the catalogue without SQL (issue 17, parts 1 and 2): `flask elife rate` and
`flask elife product`, and the same in /admin/catalogue. Their guards (a plain positive
decimal of at most 8 places; more than 10 % needs --force / a confirmation), their
history (who, when, why), and what customers see: the catalogue's prices move, a
disabled product is gone and refused (409 product_unavailable), and orders keep the rate
and price they were created with.

In-process app, the real database (SQLite file or MariaDB) and the sandbox over HTTP;
the commands through Flask's CLI runner, as `flask --app wsgi elife ...` runs them."""
import re
import threading
from decimal import Decimal

import pytest
import sqlalchemy as sa

from conftest import SEED_ORDER, order_row, row_counts
from elife.extensions import db

ADMIN = {"Authorization": "Bearer test-admin-token"}
HTML = {"Accept": "text/html"}


@pytest.fixture(autouse=True)
def _in_app_context(ctx):
    """row reads below go through the app's database."""


def cli(app, *args):
    """`flask elife ARGS` on this app; the result's output is stdout and stderr (click 8.2+)."""
    return app.test_cli_runner().invoke(args=["elife", *args])


def rates_rows():
    with db.engine.connect() as c:
        return c.execute(sa.text("SELECT rate, is_active, set_by, note FROM exchange_rates ORDER BY id")).all()


def active_rates():
    return [Decimal(str(r.rate)) for r in rates_rows() if r.is_active]


def changes():
    with db.engine.connect() as c:
        return c.execute(sa.text("SELECT product_code, action, old_price_tg, new_price_tg, actor, note "
                                 "FROM product_changes ORDER BY id")).all()


def catalogue(client, code="5000", rtype="VOICE"):
    products = client.get("/products").get_json()["products"]
    return next((p for p in products if p["productCode"] == code and p["rechargeType"] == rtype), None)


def new_order(client, customer, code="5000"):
    r = client.post("/orders", json={**SEED_ORDER, "productCode": code}, headers=customer)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


# -- the rate, from the command line -------------------------------------------------------------

def test_rate_show_says_the_active_rate_who_and_the_last_ten(app):
    for i, rate in enumerate(["0.00211", "0.00212", "0.00213"]):
        assert cli(app, "rate", "set", rate, "--note", f"bank {i}", "--by", "Bat").exit_code == 0
    r = cli(app, "rate", "show")
    assert r.exit_code == 0, r.output
    assert "active rate: 0.00213000" in r.output and "by cli:Bat: bank 2" in r.output
    assert r.output.count("replaced") == 3  # the seed's and the two before
    r = cli(app, "rate", "show", "--json")
    import json
    shown = json.loads(r.stdout)
    assert shown["active"]["rate"] == "0.00213000" and shown["active"]["setBy"] == "cli:Bat"
    assert [h["rate"] for h in shown["history"]] == ["0.00213000", "0.00212000", "0.00211000", "0.00210000"]


def test_rate_set_makes_one_new_active_row_and_keeps_the_old(app, client, log_dir):
    before = catalogue(client)
    assert before["totalFee"] == 1050
    r = cli(app, "rate", "set", "0.0022", "--note", "bank of mongolia 11-27", "--by", "Bat")
    assert r.exit_code == 0, r.output
    assert "0.00210000 -> 0.00220000 (+4.76 %)" in r.output
    rows = rates_rows()
    assert [(Decimal(str(x.rate)), bool(x.is_active)) for x in rows] == [(Decimal("0.0021"), False),
                                                                     (Decimal("0.0022"), True)]
    assert (rows[-1].set_by, rows[-1].note) == ("cli:Bat", "bank of mongolia 11-27")
    assert catalogue(client)["totalFee"] == 1100  # 5000 MNT at the new rate
    log = (log_dir / "combined.log").read_text(encoding="utf-8")
    assert re.search(r'event=rate_changed old=0\.00210000 new=0\.00220000 move="\+4\.76 %" .*actor=cli:Bat', log)


@pytest.mark.parametrize("rate", ["1e-3", "-0.0021", "0", "0.000000000", "0.000000001", "0,0021", " ",
                                  "NaN", "Infinity", "0x10", "０.００２", ".002", "0.002.1", "12345678901.5"])
def test_a_rate_that_is_not_a_plain_positive_decimal_is_refused(app, client, rate):
    before = rates_rows()
    r = cli(app, "rate", "set", "--note", "typo", "--force", "--", rate)
    assert r.exit_code == 1, r.output
    assert "invalid_rate" in r.output
    assert rates_rows() == before
    assert catalogue(client)["totalFee"] == 1050


@pytest.mark.parametrize("rate, allowed", [("0.00231", True), ("0.00189", True), ("0.0023101", False),
                                           ("0.0018899", False), ("0.021", False), ("0.00021", False)])
def test_more_than_ten_percent_needs_force(app, rate, allowed):
    r = cli(app, "rate", "set", rate, "--note", "n")
    if allowed:
        assert r.exit_code == 0, r.output
        assert active_rates() == [Decimal(rate)]
        return
    assert r.exit_code == 2, r.output
    assert "rate_change_too_large" in r.output
    assert active_rates() == [Decimal("0.0021")]
    r = cli(app, "rate", "set", rate, "--note", "really", "--force")
    assert r.exit_code == 0, r.output
    assert active_rates() == [Decimal(rate)]


def test_a_note_is_required(app):
    r = cli(app, "rate", "set", "0.0022")
    assert r.exit_code == 2 and "--note" in r.output  # click: missing option
    r = cli(app, "rate", "set", "0.0022", "--note", "   ")
    assert r.exit_code == 1
    assert active_rates() == [Decimal("0.0021")]


def test_the_first_rate_needs_no_comparison(app, client):
    with db.engine.begin() as c:
        c.execute(sa.text("DELETE FROM exchange_rates"))
    assert client.get("/products").status_code == 503  # no_exchange_rate
    r = cli(app, "rate", "set", "0.05", "--note", "first")
    assert r.exit_code == 0, r.output
    assert active_rates() == [Decimal("0.05")]


def test_an_order_keeps_the_rate_and_price_it_was_created_with(app, client, customer, sandbox):
    old = new_order(client, customer)
    assert cli(app, "rate", "set", "0.0023", "--note", "up").exit_code == 0
    assert cli(app, "product", "set-price", "--operator", "UNITEL", "--type", "VOICE", "--code", "5000",
               "--price", "5400").exit_code == 0
    sandbox.price("SD5000", 5400)  # the operator's price moved first; the catalogue follows it
    with db.engine.begin() as c:  # and the number's cached list is not the old one
        c.execute(sa.text("DELETE FROM operator_price_lists"))
    new = new_order(client, customer)
    assert (new["productPriceTg"], new["totalFee"]) == (5400, 1242)  # 5400 * 0.0023 * 100
    assert (old["productPriceTg"], old["totalFee"]) == (5000, 1050)
    n = old["orderNumber"]
    got = client.get(f"/orders/{n}", headers=customer).get_json()
    assert (got["productPriceTg"], got["totalFee"], got["productPriceRmb"]) == (5000, 1050, "10.50")
    row = order_row(n)
    assert Decimal(str(row["exchange_rate"])) == Decimal("0.0021") and row["total_fee"] == 1050
    # and it is still paid and recharged at that price: the operator is sent the order's
    # own 5000 MNT (the fake operator checks the amount against its price of the moment)
    sandbox.price("SD5000", 5000)
    assert client.post("/payment/create", json={"orderNumber": n}, headers=customer).status_code == 200
    assert sandbox.pay(n, notify=False).status_code == 200
    notice = sandbox.notice(n)
    assert notice["body"]["totalFee"] == 1050
    assert client.post(notice["path"], json=notice["body"], headers=notice["headers"]).get_json()["errcode"] == 0
    assert order_row(n)["recharge_status"] == "success"
    assert [e["amount"] for e in sandbox.submits_for(n)] == ["5000"]


def test_two_rate_changes_at_once_leave_one_active_rate(make_app, app, monkeypatch):
    """Both read the same active rate and pass the guard; the conditional UPDATE lets one
    replace it, the other is refused (rate_changed_meanwhile): never two active rows, and
    never a rate applied against one nobody looked at."""
    from elife.shop import rates
    real_check, barrier = rates.check, threading.Barrier(2)

    def both_read_first(new, force=False):
        out = real_check(new, force)
        barrier.wait(10)
        return out

    monkeypatch.setattr(rates, "check", both_read_first)
    results = []

    def change(a, value):
        with a.app_context():
            try:
                results.append(rates.set_rate(value, "test", "race"))
            except Exception as exc:  # noqa: BLE001 -- the loser's refusal is the point
                results.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=change, args=(make_app(), v)) for v in ("0.0022", "0.0020")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    wins = [r for r in results if isinstance(r, tuple)]
    lost = [r for r in results if not isinstance(r, tuple)]
    assert len(wins) == 1 and len(lost) == 1, results
    assert getattr(lost[0], "code", None) == "rate_changed_meanwhile", lost
    assert active_rates() == [wins[0][1]]
    assert len(rates_rows()) == 2


# -- the catalogue, from the command line ----------------------------------------------------------

def product(*args):
    return ["product", *args]


KEY = ["--operator", "UNITEL", "--type", "VOICE", "--code", "5000"]


def test_product_list_shows_every_product_on_sale_or_not(app):
    assert cli(app, *product("disable", *KEY)).exit_code == 0
    r = cli(app, *product("list"))
    assert r.exit_code == 0, r.output
    line = next(ln for ln in r.output.splitlines() if " 5000 " in ln and "VOICE" in ln)
    assert "DISABLED" in line and "1050 fen" in line
    assert "9 products, 8 on sale" in r.output


def test_disable_takes_it_off_sale_and_enable_puts_it_back(app, client, customer):
    existing = new_order(client, customer)
    r = cli(app, *product("disable", *KEY, "--note", "out of stock at Unitel", "--by", "Bat"))
    assert r.exit_code == 0, r.output
    assert catalogue(client) is None  # gone from GET /products
    before = row_counts()
    r = client.post("/orders", json=SEED_ORDER, headers=customer)
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "product_unavailable"
    assert row_counts() == before
    # the order made before is untouched, and can still be paid
    got = client.get(f"/orders/{existing['orderNumber']}", headers=customer).get_json()
    assert got["productCode"] == "5000" and got["totalFee"] == 1050 and got["paymentStatus"] == "unpaid"
    assert client.post("/payment/create", json={"orderNumber": existing["orderNumber"]},
                       headers=customer).status_code == 200
    # doing it twice changes nothing and records nothing
    r = cli(app, *product("disable", *KEY))
    assert r.exit_code == 0 and "unchanged" in r.output
    assert cli(app, *product("enable", *KEY, "--by", "Bat")).exit_code == 0
    assert catalogue(client)["totalFee"] == 1050
    assert new_order(client, customer)["totalFee"] == 1050
    assert [(c.action, c.actor, c.note) for c in changes()] == [
        ("disable", "cli:Bat", "out of stock at Unitel"), ("enable", "cli:Bat", None)]


def test_an_unknown_product_stays_unknown_product(app, client, customer):
    r = cli(app, *product("disable", "--operator", "UNITEL", "--type", "VOICE", "--code", "4999"))
    assert r.exit_code == 1 and "unknown_product" in r.output
    r = client.post("/orders", json={**SEED_ORDER, "productCode": "4999"}, headers=customer)
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "unknown_product"
    assert changes() == []


def test_add_and_set_price(app, client, customer):
    r = cli(app, *product("add", "--operator", "UNITEL", "--type", "DATA", "--code", "DATA50GB",
                          "--price", "45000", "--name", "Unitel data 50 GB, 30 days", "--by", "Bat"))
    assert r.exit_code == 0, r.output
    listed = catalogue(client, "DATA50GB", "DATA")
    assert listed["priceTg"] == 45000 and listed["totalFee"] == 9450
    r = cli(app, *product("add", "--operator", "UNITEL", "--type", "DATA", "--code", "DATA50GB",
                          "--price", "45000", "--name", "again"))
    assert r.exit_code == 1 and "product_exists" in r.output
    # +10 % passes, more needs --force
    assert cli(app, *product("set-price", "--operator", "UNITEL", "--type", "DATA", "--code", "DATA50GB",
                             "--price", "49500")).exit_code == 0
    r = cli(app, *product("set-price", "--operator", "UNITEL", "--type", "DATA", "--code", "DATA50GB",
                          "--price", "4950"))
    assert r.exit_code == 2 and "price_change_too_large" in r.output
    assert catalogue(client, "DATA50GB", "DATA")["priceTg"] == 49500
    assert cli(app, *product("set-price", "--operator", "UNITEL", "--type", "DATA", "--code", "DATA50GB",
                             "--price", "4950", "--force", "--note", "typo fixed")).exit_code == 0
    assert catalogue(client, "DATA50GB", "DATA")["priceTg"] == 4950
    assert [(c.action, c.old_price_tg, c.new_price_tg) for c in changes()] == [
        ("add", None, 45000), ("set_price", 45000, 49500), ("set_price", 49500, 4950)]
    r = cli(app, *product("history"))
    assert "set_price UNITEL/DATA/DATA50GB 49500 -> 4950 MNT  by cli:" in r.output


@pytest.mark.parametrize("args, code", [
    (["--operator", "UNITLE", "--type", "VOICE", "--code", "X", "--price", "100", "--name", "n"], "invalid_operator"),
    (["--operator", "UNITEL", "--type", "SMS", "--code", "X", "--price", "100", "--name", "n"], "invalid_recharge_type"),
    (["--operator", "UNITEL", "--type", "VOICE", "--code", "a b", "--price", "100", "--name", "n"],
     "invalid_product_code"),
    (["--operator", "UNITEL", "--type", "VOICE", "--code", "X", "--price", "5000.5", "--name", "n"], "invalid_price"),
    (["--operator", "UNITEL", "--type", "VOICE", "--code", "X", "--price", "5,000", "--name", "n"], "invalid_price"),
    (["--operator", "UNITEL", "--type", "VOICE", "--code", "X", "--price", "0", "--name", "n"], "invalid_price"),
    (["--operator", "UNITEL", "--type", "VOICE", "--code", "X", "--price", "-5", "--name", "n"], "invalid_price"),
    (["--operator", "UNITEL", "--type", "VOICE", "--code", "X", "--price", "1", "--name", "n"], "price_unavailable"),  # 1 MNT is less than a fen at the rate
    (["--operator", "UNITEL", "--type", "VOICE", "--code", "X", "--price", "100", "--name", " "], "invalid_name"),
])
def test_a_bad_product_is_refused_and_changes_nothing(app, args, code):
    before = row_counts()
    r = cli(app, *product("add", *args))
    assert r.exit_code == 1, r.output
    assert code in r.output
    assert row_counts() == before


# -- the same in /admin -----------------------------------------------------------------------------

def test_the_catalogue_page_shows_the_rate_history_and_the_products(client):
    r = client.get("/admin/catalogue", headers={**ADMIN, **HTML})
    assert r.status_code == 200 and r.mimetype == "text/html"
    html = r.get_data(as_text=True)
    assert 'id="active-rate">0.00210000<' in html
    assert 'data-product="UNITEL/VOICE/5000"' in html and 'action="/admin/rate"' in html
    data = client.get("/admin/catalogue.json", headers=ADMIN).get_json()
    assert data["rate"]["rate"] == "0.00210000" and len(data["products"]) == 9 and data["changes"] == []


def test_admin_sets_the_rate_with_a_bearer_token(client):
    r = client.post("/admin/rate", data={"rate": "0.0022", "note": "bank rate", "name": "Saraa"}, headers=ADMIN)
    assert r.status_code == 200, r.get_json()
    assert r.get_json() == {"old": "0.00210000", "new": "0.00220000"}
    assert rates_rows()[-1].set_by == "admin:Saraa" and rates_rows()[-1].note == "bank rate"
    r = client.post("/admin/rate", data={"rate": "0.01", "note": "slip"}, headers=ADMIN)
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "rate_change_too_large"
    r = client.post("/admin/rate", data={"rate": "1e-3", "note": "x"}, headers=ADMIN)
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "invalid_rate"
    r = client.post("/admin/rate", data={"rate": "0.0022"}, headers=ADMIN)
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "missing_note"
    assert active_rates() == [Decimal("0.0022")]


def browser_login(client, name="Saraa"):
    r = client.post("/admin/login", data={"token": "test-admin-token", "name": name}, headers=HTML)
    assert r.status_code == 303
    html = client.get("/admin/catalogue", headers=HTML).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_a_big_move_from_a_browser_asks_to_confirm_first(client):
    csrf = browser_login(client)
    r = client.post("/admin/rate", data={"rate": "0.0042", "note": "doubled?", "name": "Saraa",
                                         "csrf_token": csrf}, headers=HTML)
    assert r.status_code == 409 and r.mimetype == "text/html"
    page = r.get_data(as_text=True)
    assert "Confirm a large change" in page and "+100.00 %" in page
    assert "costs 1050 fen now" in page and "will cost 2100 fen" in page
    assert active_rates() == [Decimal("0.0021")]  # nothing changed yet
    form = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))
    assert form["force"] == "1" and form["rate"] == "0.0042" and form["note"] == "doubled?"
    r = client.post("/admin/rate", data=form, headers=HTML)
    assert r.status_code == 303 and "/admin/catalogue?m=" in r.headers["Location"]
    assert active_rates() == [Decimal("0.0042")]
    assert rates_rows()[-1].set_by == "admin:Saraa"
    shown = client.get(r.headers["Location"], headers=HTML).get_data(as_text=True)
    assert "Rate set: 0.00210000 -&gt; 0.00420000." in shown


def test_a_form_without_its_csrf_token_changes_nothing(client):
    browser_login(client)
    r = client.post("/admin/rate", data={"rate": "0.0022", "note": "n", "force": "1"}, headers=HTML)
    assert r.status_code == 403
    r = client.post("/admin/products/UNITEL/VOICE/5000/disable", data={}, headers=HTML)
    assert r.status_code == 403
    assert active_rates() == [Decimal("0.0021")] and changes() == []


def test_admin_disables_prices_and_adds_products(client, customer):
    csrf = browser_login(client, "Bold")
    r = client.post("/admin/products/UNITEL/VOICE/5000/disable", data={"csrf_token": csrf, "name": "Bold"},
                    headers=HTML)
    assert r.status_code == 303
    assert catalogue(client) is None
    r = client.post("/orders", json=SEED_ORDER, headers=customer)
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "product_unavailable"
    r = client.post("/admin/products/UNITEL/VOICE/5000/enable", headers=ADMIN)
    assert r.status_code == 200 and r.get_json()["active"] is True and r.get_json()["changed"] is True
    r = client.post("/admin/products/UNITEL/VOICE/5000/price", data={"price": "9000"}, headers=ADMIN)
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "price_change_too_large"
    r = client.post("/admin/products/UNITEL/VOICE/5000/price", data={"price": "9000", "csrf_token": csrf},
                    headers=HTML)
    assert r.status_code == 409 and "Confirm a large change" in r.get_data(as_text=True)
    r = client.post("/admin/products/UNITEL/VOICE/5000/price", data={"price": "5100"}, headers=ADMIN)
    assert r.status_code == 200 and r.get_json()["priceTg"] == 5100 and r.get_json()["oldPriceTg"] == 5000
    r = client.post("/admin/products/UNITEL/VOICE/4999/price", data={"price": "5100"}, headers=ADMIN)
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "unknown_product"
    r = client.post("/admin/products/NOPE/VOICE/5000/disable", headers=ADMIN)
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "invalid_operator"
    r = client.post("/admin/products", data={"operator": "UNITEL", "rechargeType": "VOICE", "code": "7000",
                                             "price": "7000", "productName": "Unitel voice credit 7,000₮",
                                             "csrf_token": csrf, "name": "Bold"}, headers=HTML)
    assert r.status_code == 303
    assert catalogue(client, "7000")["totalFee"] == 1470
    r = client.post("/admin/products", data={"operator": "UNITEL", "rechargeType": "VOICE", "code": "7000",
                                             "price": "7000", "productName": "again"}, headers=ADMIN)
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "product_exists"
    assert [(c.action, c.actor) for c in changes()] == [
        ("disable", "admin:Bold"), ("enable", "admin"), ("set_price", "admin"), ("add", "admin:Bold")]
    html = client.get("/admin/catalogue", headers=HTML).get_data(as_text=True)
    assert "UNITEL/VOICE/7000" in html and "5000 → 5100 MNT" in html
