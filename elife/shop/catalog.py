"""The product catalogue, priced at the active exchange rate."""
import re
from dataclasses import dataclass

import sqlalchemy as sa

from ..errors import Conflict
from ..extensions import db
from ..models import Product
from .pricing import RATE, Price, PricingError, checked_rate, price

RECHARGE_TYPES = ("VOICE", "DATA")
PRODUCT_CODE = re.compile(r"[A-Za-z0-9_-]{1,32}")  # our product codes, as POST /orders accepts them
_P = Product.__table__
# Each product with the rate beside it: one statement for the catalogue or one product.
_PRICED = sa.select(_P.c.product_code, _P.c.product_operator, _P.c.recharge_type, _P.c.name,
                    _P.c.eng_name, _P.c.days, _P.c.data, _P.c.operator_code,
                    _P.c.price_tg, RATE).where(_P.c.is_active.is_(True))
# One product on sale or not: an order for a disabled one is refused as unavailable, not unknown.
_ONE = sa.select(_P.c.product_code, _P.c.price_tg, _P.c.is_active, _P.c.operator_code, RATE).where(
    _P.c.product_operator == sa.bindparam("op"), _P.c.recharge_type == sa.bindparam("rt"),
    _P.c.product_code == sa.bindparam("code"))


@dataclass(frozen=True)
class Priced:
    """A product's row and the customer's price for it at the active rate (None: it has
    none, for want of a usable rate or of a price in range)."""
    product: object
    price: Price | None


def products(operator=None, recharge_type=None):
    """The products on sale (both filters optional), each Priced; those with no price
    (0 fen, or absurd) are not for sale and left out."""
    q = _PRICED
    if operator:
        q = q.where(_P.c.product_operator == operator)
    if recharge_type:
        q = q.where(_P.c.recharge_type == recharge_type)
    q = q.order_by(_P.c.product_operator, _P.c.recharge_type, _P.c.price_tg, _P.c.id)
    rows = db.session.connection().execute(q).all()
    if not rows:
        return []
    rate = checked_rate(rows[0].rate)
    out = []
    for p in rows:
        try:
            out.append(Priced(p, price(p.price_tg, rate)))
        except PricingError:
            continue  # priced at 0 fen (or absurdly): not for sale
    return out


def find_active(operator, recharge_type, code):
    """The product on sale as (product_code, price_tg, rate as read, the operator's code);
    None when there is no such product; a Conflict (product_unavailable) when it is off
    sale. The rate is unchecked: pass it to pricing.checked_rate."""
    row = db.session.connection().execute(_ONE, {"op": operator, "rt": recharge_type, "code": code}).first()
    if row is not None and not row.is_active:
        raise Conflict("product_unavailable", "this product is not on sale at the moment")
    return row and (row.product_code, row.price_tg, row.rate, row.operator_code or row.product_code)


def operator_code_of(operator, recharge_type, code):
    """The operator's code for one of our products (active or not); its own code when
    it has none recorded, or when it is gone."""
    found = db.session.connection().execute(_CODE, {"op": operator, "rt": recharge_type, "code": code}).scalar()
    return found or code


_CODE = sa.select(_P.c.operator_code).where(
    _P.c.product_operator == sa.bindparam("op"), _P.c.recharge_type == sa.bindparam("rt"),
    _P.c.product_code == sa.bindparam("code"))


def active_codes():
    """{(operator, recharge type): [product codes]} of the products on sale."""
    rows = db.session.connection().execute(
        sa.select(_P.c.product_operator, _P.c.recharge_type, _P.c.product_code)
        .where(_P.c.is_active.is_(True)).order_by(_P.c.product_operator, _P.c.recharge_type, _P.c.id)).all()
    out = {}
    for op, rtype, code in rows:
        out.setdefault((op, rtype), []).append(code)
    return out
