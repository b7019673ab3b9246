"""The product catalogue, priced at the active exchange rate."""
import sqlalchemy as sa

from ..extensions import db
from ..models import Product
from .pricing import RATE, PricingError, checked_rate, price, yuan

RECHARGE_TYPES = ("VOICE", "DATA")
_P = Product.__table__
# Each product with the rate beside it: one statement for the catalogue or one product.
_PRICED = sa.select(_P.c.product_code, _P.c.product_operator, _P.c.recharge_type, _P.c.name,
                    _P.c.price_tg, RATE).where(_P.c.is_active.is_(True))
_ONE = _PRICED.where(_P.c.product_operator == sa.bindparam("op"), _P.c.recharge_type == sa.bindparam("rt"),
                     _P.c.product_code == sa.bindparam("code"))


def products(operator=None, recharge_type=None):
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
            pr = price(p.price_tg, rate)
        except PricingError:
            continue  # priced at 0 fen (or absurdly): not for sale
        out.append(as_json(p, pr))
    return out


def as_json(p, pr):
    return {
        "productCode": p.product_code,
        "productOperator": p.product_operator,
        "rechargeType": p.recharge_type,
        "name": p.name,
        "priceTg": p.price_tg,
        "priceRmb": yuan(pr.total_fee),
        "totalFee": pr.total_fee,
    }


def find_active(operator, recharge_type, code):
    """The product on sale as (product_code, price_tg, rate as read), or None. The rate
    is unchecked: pass it to pricing.checked_rate."""
    row = db.session.connection().execute(_ONE, {"op": operator, "rt": recharge_type, "code": code}).first()
    return row and (row.product_code, row.price_tg, row.rate)


def active_codes():
    """{(operator, recharge type): [product codes]} of the products on sale."""
    rows = db.session.connection().execute(
        sa.select(_P.c.product_operator, _P.c.recharge_type, _P.c.product_code)
        .where(_P.c.is_active.is_(True)).order_by(_P.c.product_operator, _P.c.recharge_type, _P.c.id)).all()
    out = {}
    for op, rtype, code in rows:
        out.setdefault((op, rtype), []).append(code)
    return out
