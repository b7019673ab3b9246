"""The operator's live package list for a number, checked when an order is created.

Unitel prices per number (/service/servicetype): a package may be missing for a number,
or cost something else than our table says. POST /orders asks, briefly, and keeps the
answer in the database for UNITEL_PRICE_CACHE_SECONDS so that every worker and host
shares it; a warm order costs one primary-key read. An operator that cannot be asked is
no reason to turn a customer away: the order goes on at our price (logged), and a top-up
the operator then refuses is failed and refunded as any refusal is.
"""
import json
import logging
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, sqlite

from ..clients import unitel
from ..errors import Conflict, Invalid
from ..extensions import db
from ..logs import event
from ..models import OperatorPriceList
from ..timeutil import utcnow
from .phones import mask

log = logging.getLogger("elife.orders")

_T = OperatorPriceList.__table__
_READ = sa.select(_T.c.prices, _T.c.fetched_at).where(
    _T.c.operator == sa.bindparam("op"), _T.c.msisdn == sa.bindparam("msisdn"))


def check(settings, client, operator, msisdn, recharge_type, operator_code, price_tg):
    """Raise Invalid product_unavailable_for_number when the number cannot buy the
    package, Conflict price_changed (details: the operator's price) when its price moved;
    return quietly when it is on sale at our price, or when the operator cannot be asked."""
    if operator != "UNITEL":  # the only operator with a client
        return
    prices = offered(settings, client, operator, msisdn)
    if prices is None:
        return
    live = prices.get(recharge_type, {}).get(operator_code)
    if live is None:
        event(log, logging.INFO, "product_unavailable_for_number", phone=mask(msisdn), product=operator_code)
        raise Invalid("product_unavailable_for_number",
                      "the operator does not offer this product to this number")
    if live != price_tg:
        event(log, logging.WARNING, "price_changed", phone=mask(msisdn), product=operator_code,
              ours=price_tg, operator=live, message="run: flask elife product sync --msisdn <number>")
        raise Conflict("price_changed", f"the operator's price for this product is now {live} MNT, "
                                        f"not {price_tg}; it cannot be sold until the catalogue is updated",
                       details={"priceTg": live, "previousPriceTg": price_tg})


def offered(settings, client, operator, msisdn):
    """{recharge type: {operator code: MNT}} for the number: from the cache while it is
    fresh, else from the operator (`client`, a UnitelClient; stored); None when the
    operator cannot be asked."""
    now = utcnow()
    conn = db.session.connection()
    row = conn.execute(_READ, {"op": operator, "msisdn": msisdn}).first()
    if row is not None and row.fetched_at >= now - timedelta(seconds=settings.UNITEL_PRICE_CACHE_SECONDS):
        try:
            return json.loads(row.prices)
        except ValueError:
            pass  # unreadable: ask again
    db.session.commit()  # no transaction (nor SQLite read lock) held while the operator answers
    try:
        _, packages = client.packages(msisdn, seconds=settings.UNITEL_PRICE_TIMEOUT)
    except unitel.Unreachable as exc:
        event(log, logging.WARNING, "live_price_unavailable", phone=mask(msisdn), error=str(exc)[:200],
              message="the order is priced from our table")
        return None
    prices = {}
    for p in packages:
        prices.setdefault(p.recharge_type, {})[p.code] = p.price
    _store(db.session.connection(), operator, msisdn, json.dumps(prices, sort_keys=True), utcnow())
    db.session.commit()
    return prices


def _store(conn, operator, msisdn, prices, now):
    values = {"operator": operator, "msisdn": msisdn, "prices": prices, "fetched_at": now}
    if conn.dialect.name == "mysql":
        stmt = mysql.insert(_T).values(**values).on_duplicate_key_update(prices=prices, fetched_at=now)
    else:
        stmt = sqlite.insert(_T).values(**values).on_conflict_do_update(
            index_elements=[_T.c.operator, _T.c.msisdn], set_={"prices": prices, "fetched_at": now})
    conn.execute(stmt)


def purge(settings, now):
    """Drop lists older than the cache keeps them (the sweep's housekeeping)."""
    cutoff = now - timedelta(seconds=settings.UNITEL_PRICE_CACHE_SECONDS)
    db.session.execute(sa.delete(OperatorPriceList).where(OperatorPriceList.fetched_at < cutoff))
