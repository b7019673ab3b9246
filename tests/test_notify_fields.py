"""Every value fitted to its WeChat field type: what we send is what WeChat takes.

Each fitted value is also checked by the sandbox's own reading of WeChat's table
(elife/sandbox/wechat_messages.py, written apart from the fitting), so a rule read wrong
on one side shows as a disagreement here."""
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from elife.notify import fields
from elife.notify.fields import Content, Unfit, fit, reason_for
from elife.sandbox.wechat_messages import field_problem

FORTY = "Unitel voice credit 5,000₮ + 1 GB data 7"  # 40 characters
MONGOLIAN = "Нэгж 5,000₮ хугацаагүй, Өвлийн үнэгүй дата"


def content(**kw):
    base = dict(phone="88123456", product="Unitel voice credit 5,000₮", amount_fen=1050,
                time=datetime(2026, 1, 18, 2, 0), reason=reason_for("recharged"), order="ORD20260118100000000000001")
    return Content(**{**base, **kw})


def accepted(key, value):
    assert field_problem(key, {"value": value}) is None, (key, value, field_problem(key, {"value": value}))
    return value


def test_a_forty_character_product_name_is_cut_to_each_types_limit():
    assert len(FORTY) == 40
    c = content(product=FORTY)
    thing = accepted("thing1", fit("thing1", "product", c))
    assert len(thing) == 20 and thing.endswith("…") and thing.startswith("Unitel voice credit")
    string = accepted("character_string2", fit("character_string2", "product", c))
    assert len(string) <= 32 and string.startswith("Unitel_voice_credit_5,000")


def test_a_mongolian_name_keeps_its_letters_in_a_thing_and_is_spelled_in_latin_elsewhere():
    c = content(product=MONGOLIAN)
    thing = accepted("thing1", fit("thing1", "product", c))
    assert thing == "Нэгж 5,000₮ хугацаа…" and len(thing) == 20
    string = accepted("character_string2", fit("character_string2", "product", c))
    assert string.startswith("Negj_5,000_khugatsaagui,_Ovliin") and string.isascii() and len(string) <= 32
    with pytest.raises(Unfit):  # a phrase is Chinese only: a product never fits one
        fit("phrase3", "product", c)


@pytest.mark.parametrize("fen, text", [(1, "0.01"), (999999, "9999.99"), (1050, "10.50"), (0, "0.00"),
                                       (9999999999, "99999999.99")])
def test_amounts_in_yuan_exactly(fen, text):
    c = content(amount_fen=fen)
    assert accepted("amount1", fit("amount1", "amount", c)) == text + "元"
    assert accepted("number2", fit("number2", "amount", c)) == text
    assert accepted("thing3", fit("thing3", "amount", c)) == text + "元"
    assert accepted("character_string4", fit("character_string4", "amount", c)) == "CNY" + text


@pytest.mark.parametrize("fen", [100000000000, -1, 10.5, "10", True])
def test_an_amount_that_cannot_be_said_is_refused_not_bent(fen):
    with pytest.raises(Unfit):
        fit("amount1", "amount", content(amount_fen=fen))


@pytest.mark.parametrize("utc, china", [
    (datetime(2026, 1, 18, 15, 59, 59), "2026年01月18日 23:59"),
    (datetime(2026, 1, 18, 16, 0, 0), "2026年01月19日 00:00"),
    (datetime(2025, 12, 31, 16, 0), "2026年01月01日 00:00"),
    (datetime(2028, 2, 28, 16, 30), "2028年02月29日 00:30"),
])
def test_times_are_china_time_across_the_day_boundary(utc, china):
    c = content(time=utc)
    assert accepted("time1", fit("time1", "time", c)) == china
    assert accepted("date2", fit("date2", "time", c)) == china
    assert accepted("thing3", fit("thing3", "time", c)) == china


def test_the_phone_is_always_masked():
    c = content(phone="88123456")
    assert accepted("phone_number1", fit("phone_number1", "phone", c)) == "+976-88****56"
    assert accepted("thing2", fit("thing2", "phone", c)) == "+976 88****56"
    assert accepted("character_string3", fit("character_string3", "phone", c)) == "88****56"
    for key in ("phone_number1", "thing2", "character_string3"):
        assert "123456" not in fit(key, "phone", c)


def test_reasons_say_a_few_words_and_a_phrase_of_at_most_five_chinese_characters():
    for kind, code in (("recharged", None), ("failed_refunded", "101"), ("failed_refunded", "999"),
                       ("refunded", None)):
        c = content(reason=reason_for(kind, code))
        accepted("thing1", fit("thing1", "reason", c))
        phrase = accepted("phrase2", fit("phrase2", "reason", c))
        assert 1 <= len(phrase) <= 5
    assert fit("thing1", "reason", content(reason=reason_for("failed_refunded", "101"))) == "号码未开通服务，款项将原路退回"
    assert fit("phrase1", "reason", content(reason=reason_for("failed_refunded", "104"))) == "退款中"


def test_keys_and_values_that_name_nothing_are_refused():
    assert fields.fits("thing1", "product") is None
    assert "not a field key" in fields.fits("thing", "product")
    assert "not a field key" in fields.fits("color3", "product")
    assert "not a value" in fields.fits("thing1", "price")
    assert "cannot be said" in fields.fits("phrase1", "amount")
    assert "cannot be said" in fields.fits("amount1", "phone")
    assert "cannot be said" in fields.fits("car_number1", "order")
    assert fields.field_type("character_string12") == "character_string"


def test_control_characters_and_emoji_never_reach_wechat():
    c = content(product="Credit\n5,000\t₮ \U0001F600\u200b")
    assert accepted("thing1", fit("thing1", "product", c)) == "Credit 5,000 ₮"


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=80)


@settings(max_examples=300, deadline=None)
@given(product=_text, fen=st.integers(0, 9_999_999_999), phone=st.from_regex(r"[0-9]{8}", fullmatch=True),
       minute=st.integers(0, 60 * 24 * 366 * 3), order=st.from_regex(r"ORD[0-9]{23}", fullmatch=True))
def test_whatever_the_values_each_fitted_field_is_one_wechat_takes(product, fen, phone, minute, order):
    from datetime import timedelta
    c = content(product=product, amount_fen=fen, phone=phone, order=order,
                time=datetime(2025, 1, 1) + timedelta(minutes=minute))
    for (kind, value) in fields._FITTERS:
        key = f"{kind}7"
        try:
            out = fit(key, value, c)
        except Unfit:
            assert value == "product"  # only a name of nothing but emoji or controls says nothing
            continue
        accepted(key, out)
