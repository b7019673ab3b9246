"""Seed data: a Unitel catalogue (voice credit and data packages, in MNT) and an active
MNT->CNY rate. Idempotent: adds what is missing -- a product, or an empty operator code,
English name, days or data of one -- and changes nothing that is set.

Each product carries the operator's own code, which is what a top-up sends: credit by
card code (SD5000), data by package code (data1gb7d). `flask elife product sync` reads
the real list from Unitel and keeps these in step with it."""
from decimal import Decimal

from ..extensions import db
from ..models import ExchangeRate, Product
from ..shop.pricing import RATE_CURRENCY

DEFAULT_RATE = Decimal("0.00210000")  # yuan for one tugrik (about 476 MNT to the yuan)

PRODUCTS = [
    # (code, type, name, price in MNT)
    ("1000", "VOICE", "Unitel voice credit 1,000₮", 1000),
    ("2000", "VOICE", "Unitel voice credit 2,000₮", 2000),
    ("3000", "VOICE", "Unitel voice credit 3,000₮", 3000),
    ("5000", "VOICE", "Unitel voice credit 5,000₮", 5000),
    ("10000", "VOICE", "Unitel voice credit 10,000₮", 10000),
    ("20000", "VOICE", "Unitel voice credit 20,000₮", 20000),
    ("DATA1GB", "DATA", "Unitel data 1 GB, 7 days", 3000),
    ("DATA5GB", "DATA", "Unitel data 5 GB, 30 days", 10000),
    ("DATA20GB", "DATA", "Unitel data 20 GB, 30 days", 25000),
]
# Our code -> (the operator's code, English name, days, data), as Unitel's list has them.
OPERATOR = {
    "1000": ("SD1000", "Credit 1,000₮", 7, None),
    "2000": ("SD2000", "Credit 2,000₮", 15, None),
    "3000": ("SD3000", "Credit 3,000₮", 30, None),
    "5000": ("SD5000", "Credit 5,000₮", 30, None),
    "10000": ("SD10000", "Credit 10,000₮", 60, None),
    "20000": ("SD20000", "Credit 20,000₮", 90, None),
    "DATA1GB": ("data1gb7d", "Data 1 GB, 7 days", 7, "1GB"),
    "DATA5GB": ("data5gb30d", "Data 5 GB, 30 days", 30, "5GB"),
    "DATA20GB": ("data20gb30d", "Data 20 GB, 30 days", 30, "20GB"),
}


def seed():
    added = 0
    for code, rtype, name, price_tg in PRODUCTS:
        operator_code, eng_name, days, data = OPERATOR[code]
        product = db.session.query(Product).filter_by(
            product_operator="UNITEL", recharge_type=rtype, product_code=code).first()
        if product is None:
            db.session.add(Product(product_code=code, product_operator="UNITEL", recharge_type=rtype,
                                   name=name, price_tg=price_tg, is_active=True, operator_code=operator_code,
                                   eng_name=eng_name, days=days, data=data))
            added += 1
            continue
        for column, value in (("operator_code", operator_code), ("eng_name", eng_name), ("days", days),
                              ("data", data)):
            if getattr(product, column) is None and value is not None:
                setattr(product, column, value)
    has_rate = db.session.query(ExchangeRate.id).filter_by(currency=RATE_CURRENCY, is_active=True).first()
    if not has_rate:
        db.session.add(ExchangeRate(currency=RATE_CURRENCY, rate=DEFAULT_RATE, is_active=True))
        added += 1
    db.session.commit()
    return added
