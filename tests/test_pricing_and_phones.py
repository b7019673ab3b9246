"""Pricing (MNT -> integer fen, Decimal, ROUND_HALF_UP) and Mongolian phone numbers.

The rules are checked twice: on the functions themselves, and as a customer sees them
through GET /products and POST /orders on the real database.

Note: no test here holds an app context open while it makes requests: Flask would reuse
it for the request, and `g` (where the caller is cached) would leak between requests.
"""
from decimal import Decimal

import pytest
import requests
import sqlalchemy as sa

from conftest import SEED_ORDER, order_row, row_counts
from elife.shop import phones
from elife.extensions import db
from elife.models import ExchangeRate, Product
from elife.shop.pricing import RATE_CURRENCY, PricingError, fen_for, price, yuan


# -- helpers --------------------------------------------------------------------------------

# Rate-limit counters (written for every request, rejected ones too: that is their job)
# are bookkeeping, not stored data; every other table must stay as it was.
BOOKKEEPING = {"rate_limits"}


def counts(app):
    with app.app_context():
        return {t: n for t, n in row_counts().items() if t not in BOOKKEEPING}


def set_rate(app, rate, deactivate_others=True, currency=RATE_CURRENCY):
    """Make `rate` (a string) the active rate, as an operator would: a new row."""
    with app.app_context():
        if deactivate_others:
            db.session.execute(sa.update(ExchangeRate).values(is_active=False))
        db.session.add(ExchangeRate(currency=currency, rate=Decimal(rate), is_active=True))
        db.session.commit()


def add_product(app, code, price_tg, recharge_type="VOICE", active=True, operator="UNITEL"):
    """Our product, and the (fake) operator offering it at the same price, so that the
    live price check at POST /orders agrees with our table."""
    with app.app_context():
        db.session.add(Product(product_code=code, product_operator=operator, recharge_type=recharge_type,
                               name=f"test {code}", price_tg=price_tg, is_active=active))
        db.session.commit()
    sandbox = f"http://127.0.0.1:{app.config['SETTINGS'].SANDBOX_PORT}"
    requests.post(f"{sandbox}/unitel/_price", json={"code": code, "price": price_tg, "type": recharge_type},
                  timeout=5).raise_for_status()


def listed(client, **filters):
    r = client.get("/products", query_string=filters)
    assert r.status_code == 200, r.get_json()
    return {(p["productOperator"], p["rechargeType"], p["productCode"]): p for p in r.get_json()["products"]}


def order_for(code, recharge_type="VOICE", phone="88888888"):
    return {**SEED_ORDER, "productCode": code, "rechargeType": recharge_type, "phoneNumber": phone}


# -- fen_for / price: the one rounding rule ---------------------------------------------------

@pytest.mark.parametrize("price_tg, rate, fen", [
    (5000, "0.0021", 1050),       # the seed's order at the seed's rate: exact
    (1000, "0.0021", 210),
    (250, "0.0021", 53),          # 52.5 fen: half up (banker's rounding would say 52)
    (2150, "0.0021", 452),        # 451.5 fen: a float computes 451.49999999999994 and says 451
    (2950, "0.0021", 620),        # 619.5 fen: float says 619.4999999999999
    (1290, "0.0035", 452),        # 451.5 fen at another rate
    (150, "0.0047", 71),          # 70.5 fen
    (1, "0.005", 1),              # 0.5 fen: the smallest price that is still sold
    (1, "0.00499999", 0),         # 0.499999 fen: rounds down to nothing
    (1000, "0.00214999", 215),    # 214.999 fen
    (1000, "0.00214499", 214),    # 214.499 fen: just under the half
    (1000, "0.00214500", 215),    # 214.5 fen: exactly the half
    (99999, "0.00123457", 12346),  # 12345.576543 fen
    (25000, "0.00210000", 5250),
    (3, "0.0021", 1),             # 0.63 fen -> 1
    (2, "0.0021", 0),             # 0.42 fen -> 0
])
def test_fen_rounds_half_up_on_exact_decimals(price_tg, rate, fen):
    assert fen_for(price_tg, Decimal(rate)) == fen
    assert type(fen_for(price_tg, Decimal(rate))) is int


@pytest.mark.parametrize("price_tg, rate", [
    (5000, 0.0021),               # a float rate
    (5000.0, Decimal("0.0021")),  # a float price
    (5000, "0.0021"),             # a string is not a Decimal either
    (Decimal("5000"), Decimal("0.0021")),  # tugrik are whole: an int, not a Decimal
    (True, Decimal("0.0021")),    # bool is an int in Python, not a price
])
def test_money_is_never_computed_from_floats_or_strings(price_tg, rate):
    with pytest.raises(TypeError):
        fen_for(price_tg, rate)
    with pytest.raises(TypeError):
        price(price_tg, rate)


@pytest.mark.parametrize("price_tg, rate", [
    (5000, "0.0021"), (250, "0.0021"), (2150, "0.0021"), (1, "0.005"), (99999, "0.00123457"),
    (12345, "0.00987654"), (7, "0.00357143"),
])
def test_price_rmb_times_100_is_total_fee(price_tg, rate):
    p = price(price_tg, Decimal(rate))
    assert isinstance(p.price_rmb, Decimal)
    assert p.price_rmb.as_tuple().exponent == -2
    assert p.price_rmb * 100 == p.total_fee
    assert Decimal(yuan(p.total_fee)) * 100 == p.total_fee
    assert p.price_tg == price_tg and p.rate == Decimal(rate)


@pytest.mark.parametrize("fen, shown", [(1, "0.01"), (10, "0.10"), (53, "0.53"), (1050, "10.50"),
                                        (100, "1.00"), (123456, "1234.56")])
def test_yuan_is_a_two_place_string(fen, shown):
    assert yuan(fen) == shown


@pytest.mark.parametrize("price_tg, rate", [(0, "0.0021"), (1, "0.0021"), (2, "0.0021"),
                                             (1, "0.00499999"), (-100, "0.0021")])
def test_a_price_below_one_fen_is_a_clear_error(price_tg, rate):
    with pytest.raises(PricingError) as e:
        price(price_tg, Decimal(rate))
    assert e.value.code == "price_unavailable"


def test_an_absurd_price_is_a_clear_error():
    # 1,000,000 MNT at a mistyped rate of 2.1 yuan per tugrik: 210 million fen
    with pytest.raises(PricingError) as e:
        price(1_000_000, Decimal("2.1"))
    assert e.value.code == "price_unavailable"


# -- through the API, on the real database ----------------------------------------------------

def test_seed_catalogue_prices_at_the_seed_rate(client):
    items = listed(client)
    assert len(items) == 9
    assert items[("UNITEL", "VOICE", "5000")]["totalFee"] == 1050
    assert items[("UNITEL", "VOICE", "5000")]["priceRmb"] == "10.50"
    assert items[("UNITEL", "DATA", "DATA20GB")]["totalFee"] == 5250
    for p in items.values():
        assert type(p["totalFee"]) is int and type(p["priceTg"]) is int
        assert isinstance(p["priceRmb"], str)
        assert Decimal(p["priceRmb"]) * 100 == p["totalFee"]
        assert len(p["priceRmb"].split(".")[1]) == 2


@pytest.mark.parametrize("rate, expected", [
    # rate -> {productCode: totalFee} for products priced 250, 2150, 5000 and 1 MNT
    ("0.0021", {"E250": 53, "E2150": 452, "5000": 1050}),   # E1: 0.21 fen, not sold
    ("0.0035", {"E250": 88, "E2150": 753, "5000": 1750}),   # 87.5 -> 88, 752.5 -> 753; E1: 0.35
    ("0.005", {"E1": 1, "E250": 125, "E2150": 1075, "5000": 2500}),  # E1: 0.5 fen -> 1 fen, sold
    ("0.00499999", {"E250": 125, "E2150": 1075, "5000": 2500}),  # 124.99975, 1074.997..., 2499.995
    ("0.00123457", {"E250": 31, "E2150": 265, "5000": 617}),  # 30.86425, 265.43255, 617.285
])
def test_catalogue_prices_follow_the_active_rate_with_half_up(app, client, rate, expected):
    add_product(app, "E250", 250)
    add_product(app, "E2150", 2150)
    add_product(app, "E1", 1)
    set_rate(app, rate)
    items = listed(client, operator="UNITEL", rechargeType="VOICE")
    for code in ("E1", "E250", "E2150", "5000"):
        key = ("UNITEL", "VOICE", code)
        if code in expected:
            assert items[key]["totalFee"] == expected[code], code
            assert Decimal(items[key]["priceRmb"]) * 100 == expected[code]
        else:
            assert key not in items, f"{code} costs under one fen and must not be listed"


def test_an_order_is_priced_like_the_catalogue_with_the_half_up_edge(app, client, customer):
    add_product(app, "E2150", 2150)
    shown = listed(client)[("UNITEL", "VOICE", "E2150")]
    r = client.post("/orders", json=order_for("E2150"), headers=customer)
    assert r.status_code == 201, r.get_json()
    o = r.get_json()
    assert o["totalFee"] == 452 == shown["totalFee"]
    assert o["productPriceRmb"] == "4.52" == shown["priceRmb"]
    assert o["productPriceTg"] == 2150
    with app.app_context():
        row = order_row(o["orderNumber"])
    assert row["total_fee"] == 452
    assert Decimal(str(row["product_price_rmb"])) * 100 == 452
    assert Decimal(str(row["exchange_rate"])) == Decimal("0.0021")


def test_the_newest_active_rate_wins(app, client):
    set_rate(app, "0.0030", deactivate_others=False)   # a second active row, newer
    assert listed(client)[("UNITEL", "VOICE", "5000")]["totalFee"] == 1500
    set_rate(app, "0.0040", deactivate_others=False, currency="USD_TO_CNY")  # another currency
    assert listed(client)[("UNITEL", "VOICE", "5000")]["totalFee"] == 1500


def test_a_later_rate_change_never_changes_an_existing_order(app, client, customer):
    r = client.post("/orders", json=SEED_ORDER, headers=customer)
    assert r.status_code == 201
    first = r.get_json()
    assert first["totalFee"] == 1050
    n = first["orderNumber"]
    with app.app_context():
        before = dict(order_row(n))

    set_rate(app, "0.0030")                                 # a new rate row
    with app.app_context():                                 # and the old row edited in place
        db.session.execute(sa.update(ExchangeRate).where(ExchangeRate.is_active.is_(False))
                           .values(rate=Decimal("0.0099")))
        db.session.commit()

    again = client.get(f"/orders/{n}", headers=customer).get_json()
    assert again["totalFee"] == 1050 and again["productPriceRmb"] == "10.50"
    assert again["productPriceTg"] == 5000
    listing = client.get("/orders", headers=customer).get_json()["orders"]
    assert [o["totalFee"] for o in listing if o["orderNumber"] == n] == [1050]
    with app.app_context():
        after = dict(order_row(n))
    for col in ("total_fee", "product_price_rmb", "product_price_tg", "exchange_rate"):
        assert after[col] == before[col], col

    # the catalogue and a new order use the new rate
    assert listed(client)[("UNITEL", "VOICE", "5000")]["totalFee"] == 1500
    r = client.post("/orders", json=SEED_ORDER, headers=customer)
    assert r.status_code == 201 and r.get_json()["totalFee"] == 1500


@pytest.mark.parametrize("how", ["all_inactive", "other_currency_only", "zero_rate", "no_rows"])
def test_no_active_rate_is_a_clear_error_not_an_order(app, client, customer, how):
    with app.app_context():
        if how == "no_rows":
            db.session.execute(sa.delete(ExchangeRate))
        else:
            db.session.execute(sa.update(ExchangeRate).values(is_active=False))
        db.session.commit()
    if how == "other_currency_only":
        set_rate(app, "0.0021", currency="USD_TO_CNY")
    if how == "zero_rate":
        set_rate(app, "0")
    before = counts(app)

    r = client.post("/orders", json=SEED_ORDER, headers=customer)
    assert r.status_code == 503
    assert r.is_json and r.get_json()["error"]["code"] == "no_exchange_rate"
    assert "orderNumber" not in r.get_json()

    r = client.get("/products")
    assert r.status_code == 503
    assert r.is_json and r.get_json()["error"]["code"] == "no_exchange_rate"
    assert counts(app) == before


@pytest.mark.parametrize("price_tg", [0, 1, 2])
def test_a_product_priced_at_zero_fen_is_not_sold(app, client, customer, price_tg):
    add_product(app, "FREE", price_tg)
    add_product(app, "THREE", 3)            # 0.63 fen -> 1 fen: the cheapest that is sold
    items = listed(client)
    assert ("UNITEL", "VOICE", "FREE") not in items
    assert items[("UNITEL", "VOICE", "THREE")]["totalFee"] == 1
    before = counts(app)
    r = client.post("/orders", json=order_for("FREE"), headers=customer)
    assert r.status_code == 409
    assert r.get_json()["error"]["code"] == "price_unavailable"
    assert counts(app) == before
    r = client.post("/orders", json=order_for("THREE"), headers=customer)
    assert r.status_code == 201 and r.get_json()["totalFee"] == 1


def test_an_inactive_product_is_neither_listed_nor_sold(app, client, customer):
    add_product(app, "OLD", 5000, active=False)
    assert ("UNITEL", "VOICE", "OLD") not in listed(client)
    before = counts(app)
    r = client.post("/orders", json=order_for("OLD"), headers=customer)
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "product_unavailable"
    assert counts(app) == before
    r = client.post("/orders", json=order_for("NOSUCH"), headers=customer)  # not off sale: not there
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "unknown_product"


def test_a_client_sent_price_is_refused_not_used(app, client, customer):
    """The only price that counts is ours: a client's is refused, not silently taken."""
    before = counts(app)
    r = client.post("/orders", json={**SEED_ORDER, "totalFee": 1}, headers=customer)
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "price_not_accepted"
    assert counts(app) == before


# -- phone numbers ---------------------------------------------------------------------------

@pytest.mark.parametrize("raw, national", [
    ("88888888", "88888888"),
    ("+97688888888", "88888888"),
    ("97688888888", "88888888"),
    ("0097688888888", "88888888"),
    ("+976 8888 8888", "88888888"),
    ("+976-8888-8888", "88888888"),
    ("976 8888-8888", "88888888"),
    ("00976 88 88 88 88", "88888888"),
    ("  8888 8888  ", "88888888"),
    ("8888-8888", "88888888"),
    ("(+976) 8812-3456", "88123456"),
    ("+976\u00a08612\u00a03456", "86123456"),   # no-break spaces from a copied number
    ("97612345", "97612345"),     # a G-Mobile number starting 976 is not a prefix
    ("+97697612345", "97612345"),
    ("99112233", "99112233"),
])
def test_normalize(raw, national):
    assert phones.normalize(raw) == national


@pytest.mark.parametrize("raw", [
    "", "   ", "8888888", "888888888", "+9768888888", "+976888888888", "976888888", "+8688888888",
    "8888888a", "88888888x", "+86 13800138000", "８８８８８８８８", "٨٨٨٨٨٨٨٨", "88_888_888", "+976+88888888",
    "0088888888", "88888888.0", "1e7",
])
def test_normalize_rejects(raw):
    with pytest.raises(phones.PhoneError) as e:
        phones.normalize(raw)
    assert e.value.code == "invalid_phone_number"


@pytest.mark.parametrize("raw", [88888888, None, 8.8e7, ["88888888"], b"88888888"])
def test_normalize_rejects_non_strings(raw):
    with pytest.raises(phones.PhoneError) as e:
        phones.normalize(raw)
    assert e.value.code == "invalid_phone_number"


@pytest.mark.parametrize("number, operator", [
    ("80123456", "UNITEL"), ("86123456", "UNITEL"), ("88123456", "UNITEL"), ("89123456", "UNITEL"),
    ("94123456", "MOBICOM"), ("95123456", "MOBICOM"), ("99123456", "MOBICOM"),
    ("90123456", "SKYTEL"), ("91123456", "SKYTEL"), ("96123456", "SKYTEL"),
    ("93123456", "GMOBILE"), ("97123456", "GMOBILE"), ("98123456", "GMOBILE"),
    ("70123456", None),   # a fixed line: valid, no mobile operator
    ("11123456", None),   # Ulaanbaatar fixed line
    ("40123456", None),   # not in the plan at all
    ("72123456", None),   # Lime: an operator the library knows and we do not name
])
def test_operator_by_prefix(number, operator):
    assert phones.operator_of(number) == operator


@pytest.mark.parametrize("raw", ["+976 8012 3456", "86123456", "976-8812-3456", "0097689123456"])
def test_unitel_numbers_pass_the_unitel_check(raw):
    assert phones.check_operator(raw, "UNITEL") == phones.normalize(raw)


@pytest.mark.parametrize("raw, who", [
    ("94123456", "Mobicom"), ("+976 9512 3456", "Mobicom"), ("99123456", "Mobicom"),
    ("91123456", "Skytel"), ("98123456", "G-Mobile"), ("70123456", "no known mobile operator"),
    ("60123456", "ONDO"), ("72123456", "Lime"),
])
def test_another_operators_number_fails_the_unitel_check(raw, who):
    with pytest.raises(phones.PhoneError) as e:
        phones.check_operator(raw, "UNITEL")
    assert e.value.code == "phone_operator_mismatch"
    assert who in e.value.message


@pytest.mark.parametrize("phone", ["+976 8012 3456", "86123456", "976-8912-3456", "00976 88123456"])
def test_every_unitel_range_can_be_ordered(app, client, customer, phone):
    r = client.post("/orders", json=order_for("5000", phone=phone), headers=customer)
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["phoneNumber"] == phones.normalize(phone)
    with app.app_context():
        assert order_row(r.get_json()["orderNumber"])["phone_number"] == phones.normalize(phone)


@pytest.mark.parametrize("phone", ["94123456", "95123456", "99123456", "+976 9911 2233", "97612345",
                                   "90123456"])
def test_another_operators_number_ordered_as_unitel_is_400(app, client, customer, phone):
    before = counts(app)
    r = client.post("/orders", json=order_for("5000", phone=phone), headers=customer)
    assert r.status_code == 400
    assert r.get_json()["error"]["code"] == "phone_operator_mismatch"
    assert counts(app) == before


@pytest.mark.parametrize("number, masked", [
    ("88123456", "88****56"), ("99112233", "99****33"), ("1234", "****"), ("12", "**"),
    ("", ""), (None, ""), ("12345", "12*45"),
])
def test_mask(number, masked):
    assert phones.mask(number) == masked
    if number and len(number) == 8:
        assert number[2:6] not in phones.mask(number)


def test_logs_carry_the_masked_number_only(app, client, customer, log_dir):
    r = client.post("/orders", json=order_for("5000", phone="88123456"), headers=customer)
    assert r.status_code == 201
    text = (log_dir / "combined.log").read_text(encoding="utf-8")
    line = [ln for ln in text.splitlines() if r.get_json()["orderNumber"] in ln and "order_created" in ln]
    assert line, "order_created is logged"
    assert "88****56" in line[-1] and "88123456" not in line[-1]
