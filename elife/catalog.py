"""The product catalogue, priced at the active exchange rate."""
from .extensions import db
from .models import Product
from .pricing import PricingError, active_rate, price, yuan

RECHARGE_TYPES = ("VOICE", "DATA")


def products(operator=None, recharge_type=None):
    q = db.session.query(Product).filter(Product.is_active.is_(True))
    if operator:
        q = q.filter(Product.product_operator == operator)
    if recharge_type:
        q = q.filter(Product.recharge_type == recharge_type)
    rows = q.order_by(Product.product_operator, Product.recharge_type, Product.price_tg, Product.id).all()
    if not rows:
        return []
    rate = active_rate()
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
    return (db.session.query(Product)
            .filter_by(product_operator=operator, recharge_type=recharge_type,
                       product_code=code, is_active=True)
            .one_or_none())
