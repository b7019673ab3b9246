"""The catalogue and the exchange rate as JSON: GET /products for customers; for the
person on duty /admin/catalogue(.json) and its changes, and `flask elife rate show --json`,
`product list --json`."""
from ...shop.pricing import yuan
from ...timeutil import iso


def product(item):
    """A product on sale, priced (catalog.Priced), as GET /products lists it."""
    p, pr = item.product, item.price
    return {
        "productCode": p.product_code,
        "productOperator": p.product_operator,
        "rechargeType": p.recharge_type,
        "name": p.name,
        "engName": p.eng_name,
        "days": p.days,
        "data": p.data,
        "priceTg": p.price_tg,
        "priceRmb": yuan(pr.total_fee),
        "totalFee": pr.total_fee,
    }


def listed(item):
    """Any product, on sale or not (catalog.Priced; no price without a usable rate)."""
    row, pr = item.product, item.price
    return {"productOperator": row.product_operator, "rechargeType": row.recharge_type,
            "productCode": row.product_code, "name": row.name, "priceTg": row.price_tg,
            "active": bool(row.is_active), "totalFee": pr.total_fee if pr else None,
            "updatedAt": iso(row.updated_at)}


def change(row):
    """One product_changes row."""
    return {"product": f"{row.product_operator}/{row.recharge_type}/{row.product_code}", "action": row.action,
            "oldPriceTg": row.old_price_tg, "newPriceTg": row.new_price_tg, "by": row.actor, "note": row.note,
            "at": iso(row.created_at)}


def rate(row):
    """One exchange_rates row."""
    return {"rate": str(row.rate), "active": bool(row.is_active), "setAt": iso(row.created_at),
            "setBy": row.set_by, "note": row.note,
            "replacedAt": None if row.is_active else iso(row.updated_at)}


def rate_history(rows):
    """(the active rate or None, every rate) as JSON, newest first."""
    history = [rate(r) for r in rows]
    return next((r for r in history if r["active"]), None), history


def catalogue(rate_rows, items, changes):
    """GET /admin/catalogue.json (and what its page shows)."""
    active, history = rate_history(rate_rows)
    return {"rate": active, "rateHistory": history, "products": [listed(i) for i in items],
            "changes": [change(c) for c in changes]}


def rate_set(old, new):
    """POST /admin/rate: the rate before (None: there was none) and after."""
    return {"old": None if old is None else str(old), "new": str(new)}


def toggled(item, changed):
    """A product put on or taken off sale; `changed`: False when it already was."""
    return {**listed(item), "changed": changed}


def repriced(old_price_tg, item):
    return {**listed(item), "oldPriceTg": old_price_tg}
