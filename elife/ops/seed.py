"""Seed data: a Unitel catalogue (voice credit and data packages, in MNT) and an active
MNT->CNY rate. Idempotent: adds what is missing, changes nothing that exists."""
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


def seed():
    added = 0
    for code, rtype, name, price_tg in PRODUCTS:
        exists = db.session.query(Product.id).filter_by(
            product_operator="UNITEL", recharge_type=rtype, product_code=code).first()
        if not exists:
            db.session.add(Product(product_code=code, product_operator="UNITEL", recharge_type=rtype,
                                   name=name, price_tg=price_tg, is_active=True))
            added += 1
    has_rate = db.session.query(ExchangeRate.id).filter_by(currency=RATE_CURRENCY, is_active=True).first()
    if not has_rate:
        db.session.add(ExchangeRate(currency=RATE_CURRENCY, rate=DEFAULT_RATE, is_active=True))
        added += 1
    db.session.commit()
    return added
