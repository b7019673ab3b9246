"""Numbers by the current plan (issue 17, part 3): the operator of a Mongolian number comes
from libphonenumber's carrier data (the `phonenumbers` package) and our small override
table; every prefix the issue lists is detected as its operator, across its whole range,
and the error names the number's real operator, ONDO included."""
import phonenumbers
import pytest
from phonenumbers import carrier

from conftest import SEED_ORDER, row_counts
from elife.shop import phones

EVERY_LISTED_PREFIX = [(p, op) for op, ps in phones.OPERATOR_PREFIXES.items() for p in ps]
# Numbers across each prefix's range: every third digit, and the edges.
SPREAD = ["000000", "123456", "255555", "399999", "450000", "555555", "678901", "765432", "888888", "999999"]


def test_the_plan_is_the_issues():
    """The table the tests walk is the one issue 17 gives (so a typo there fails here)."""
    assert phones.OPERATOR_PREFIXES == {
        "UNITEL": ("50", "55", "80", "86", "88", "89"),
        "MOBICOM": ("85", "94", "95", "99"),
        "SKYTEL": ("69", "90", "91", "96"),
        "GMOBILE": ("83", "92", "93", "97", "98"),
        "ONDO": ("60", "66", "81"),
    }


@pytest.mark.parametrize("prefix, operator", EVERY_LISTED_PREFIX)
def test_every_listed_prefix_is_its_operator_across_its_range(prefix, operator):
    for rest in SPREAD:
        number = prefix + rest
        assert phones.operator_of(number) == operator, number
        for d in "0123456789":  # every third digit of the prefix's range
            assert phones.operator_of(prefix + d + rest[1:]) == operator, prefix + d + rest[1:]


@pytest.mark.parametrize("prefix, operator", EVERY_LISTED_PREFIX)
def test_each_other_operator_is_named_when_ordered_as_unitel(prefix, operator):
    number = prefix + "123456"
    if operator == "UNITEL":
        assert phones.check_operator(number, "UNITEL") == number
        return
    with pytest.raises(phones.PhoneError) as e:
        phones.check_operator("+976 " + number, "UNITEL")
    assert e.value.code == "phone_operator_mismatch"
    assert f"belongs to {phones.OPERATOR_NAMES[operator]}, not Unitel" in e.value.message


def test_overrides_are_only_where_the_library_disagrees():
    """Each override changes what the installed carrier data says for part of its range;
    once the library agrees with one everywhere, this fails, and the entry can go."""
    for prefix, (operator, source) in phones.OVERRIDES.items():
        assert source, prefix
        library = set()
        for d in "0123456789":
            n = phonenumbers.parse((prefix + d).ljust(8, "5"), "MN")
            ok = phonenumbers.is_valid_number(n)
            library.add(phones.CARRIER_CODES.get(carrier.name_for_number(n, "en")) if ok else "invalid")
        assert library != {operator}, f"libphonenumber now agrees with the override for {prefix}: remove it"


def test_what_the_installed_data_says_without_the_overrides():
    """The facts the override table's comments give, read from the installed library."""
    def lib(number):
        n = phonenumbers.parse(number, "MN")
        return carrier.name_for_number(n, "en") if phonenumbers.is_valid_number(n) else None

    assert lib("50412345") == "Unitel" and lib("50512345") == "Mobicom"
    assert lib("55412345") == "Unitel" and lib("55512345") == "Mobicom"
    assert lib("92012345") == "Skytel" and lib("92112345") == "G-Mobile" and lib("92512345") is None
    # and with them, the issue's facts
    assert phones.operator_of("50512345") == phones.operator_of("55912345") == "UNITEL"
    assert phones.operator_of("92012345") == phones.operator_of("92512345") == "GMOBILE"


def test_the_longest_override_wins(monkeypatch):
    monkeypatch.setitem(phones.OVERRIDES, "505", ("MOBICOM", "test"))
    assert phones.operator_of("50512345") == "MOBICOM"
    assert phones.operator_of("50412345") == "UNITEL"


@pytest.mark.parametrize("number", ["40123456", "30000000", "65123456", "84123456", "82123456", "57123456"])
def test_a_number_outside_the_plan_is_invalid(number):
    with pytest.raises(phones.PhoneError) as e:
        phones.check_operator(number, "UNITEL")
    assert e.value.code == "invalid_phone_number"


@pytest.mark.parametrize("number", ["70123456", "11123456", "75123456"])
def test_a_fixed_line_belongs_to_no_mobile_operator(number):
    with pytest.raises(phones.PhoneError) as e:
        phones.check_operator(number, "UNITEL")
    assert e.value.code == "phone_operator_mismatch" and "no known mobile operator" in e.value.message


@pytest.mark.parametrize("phone", ["50123456", "+976 5512 3456", "50912345", "55512345"])
def test_unitel_customers_with_50_and_55_numbers_can_order(client, customer, phone):
    r = client.post("/orders", json={**SEED_ORDER, "phoneNumber": phone}, headers=customer)
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["phoneNumber"] == phones.normalize(phone)


@pytest.mark.parametrize("phone, who", [("60123456", "ONDO"), ("66123456", "ONDO"), ("81123456", "ONDO"),
                                        ("85123456", "Mobicom"), ("69123456", "Skytel"), ("83123456", "G-Mobile"),
                                        ("92512345", "G-Mobile")])
def test_an_order_for_another_operators_number_names_it(app, client, customer, phone, who):
    with app.app_context():
        before = row_counts()
    r = client.post("/orders", json={**SEED_ORDER, "phoneNumber": phone}, headers=customer)
    assert r.status_code == 400
    err = r.get_json()["error"]
    assert err["code"] == "phone_operator_mismatch" and f"belongs to {who}, not Unitel" in err["message"]
    with app.app_context():
        assert row_counts() == before


def test_an_order_for_a_number_outside_the_plan_is_invalid(app, client, customer):
    r = client.post("/orders", json={**SEED_ORDER, "phoneNumber": "40123456"}, headers=customer)
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "invalid_phone_number"
