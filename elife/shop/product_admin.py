"""Changing the catalogue: add a denomination, set its MNT price, take it off sale and
put it back. Each change is one conditional UPDATE (or the INSERT) and its
product_changes row (who, when, what) in one transaction, and is logged.

A disabled product is not listed and cannot be ordered (409 product_unavailable);
orders already made keep their product and price, which they store.
"""
import logging
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from ..errors import Conflict, Invalid, NotFound
from ..extensions import db
from ..logs import event
from ..models import Product, ProductChange
from ..timeutil import utcnow
from . import catalog, phones
from .pricing import RATE, PricingError, checked_rate, price
from .rates import MAX_MOVE, move, move_text

log = logging.getLogger("elife.catalog")

NAME_MAX = 100
NOTE_MAX = 255
MAX_PRICE_TG = 100_000_000  # whole tugrik; far above any top-up, far below the INT column
HISTORY = 20

_P = Product.__table__
_C = ProductChange.__table__


class ProductError(Invalid):
    """invalid_operator, invalid_recharge_type, invalid_product_code, invalid_price,
    invalid_name, note_too_long."""


class PriceMoveTooLarge(Conflict):
    def __init__(self, old, new, m):
        super().__init__("price_change_too_large",
                         f"{new} MNT is {move_text(m)} from {old} MNT; more than "
                         f"{int(MAX_MOVE * 100)} % needs confirming (--force)")


def key(operator, recharge_type, code):
    """The product's key, checked; (operator, type, code)."""
    operator = (operator or "").strip().upper()
    recharge_type = (recharge_type or "").strip().upper()
    code = (code or "").strip()
    if operator not in phones.OPERATOR_CODES:
        raise ProductError("invalid_operator", f"operator must be one of {', '.join(phones.OPERATOR_CODES)}")
    if recharge_type not in catalog.RECHARGE_TYPES:
        raise ProductError("invalid_recharge_type", f"type must be one of {', '.join(catalog.RECHARGE_TYPES)}")
    if not catalog.PRODUCT_CODE.fullmatch(code):
        raise ProductError("invalid_product_code", "code must be 1-32 letters, digits, _ or -")
    return operator, recharge_type, code


def parse_price(raw):
    """Whole tugrik: '5000' -> 5000. Not '5,000', '5000.5', '-1', '0' or '1e4'."""
    text = str(raw).strip() if isinstance(raw, (str, int)) and not isinstance(raw, bool) else ""
    if not (text.isascii() and text.isdigit()) or len(text) > 9 or not 0 < int(text) <= MAX_PRICE_TG:
        raise ProductError("invalid_price", f"the price is whole tugrik, 1 to {MAX_PRICE_TG:,}")
    return int(text)


def _note(raw):
    note = " ".join(str(raw or "").split())
    if len(note) > NOTE_MAX:
        raise ProductError("note_too_long", f"the note is longer than {NOTE_MAX} characters")
    return note or None


def _where(k):
    operator, recharge_type, code = k
    return sa.and_(_P.c.product_operator == operator, _P.c.recharge_type == recharge_type,
                   _P.c.product_code == code)


def find(k):
    return db.session.connection().execute(sa.select(_P).where(_where(k))).first()


def _record(conn, k, action, actor, note, old_price=None, new_price=None, now=None):
    operator, recharge_type, code = k
    conn.execute(_C.insert(), {"product_operator": operator, "recharge_type": recharge_type,
                               "product_code": code, "action": action, "old_price_tg": old_price,
                               "new_price_tg": new_price, "actor": actor[:64], "note": note,
                               "created_at": now or utcnow()})


def _check_priceable(price_tg):
    """At the active rate the price must be at least a fen and not absurd (no rate yet: fine)."""
    rate = db.session.connection().execute(sa.select(RATE)).scalar()
    if rate is None:
        return
    try:
        price(price_tg, checked_rate(rate))
    except PricingError as e:
        # Not the request's form but the rate of the moment: a conflict, as POST /orders says it.
        raise Conflict("price_unavailable", f"{price_tg} MNT at the active rate {rate}: {e.message}") from None


def _done(k, action, actor, **fields):
    operator, recharge_type, code = k
    event(log, logging.INFO, "product_changed", action=action, product=f"{operator}/{recharge_type}/{code}",
          actor=actor, **fields)


def add(operator, recharge_type, code, price_tg, name, actor, note=None, active=True):
    k = key(operator, recharge_type, code)
    price_tg = parse_price(price_tg)
    name = " ".join(str(name or "").split())
    if not name or len(name) > NAME_MAX or not name.isprintable():
        raise ProductError("invalid_name", f"a name of 1 to {NAME_MAX} printable characters is required")
    note = _note(note)
    _check_priceable(price_tg)
    now = utcnow()
    conn = db.session.connection()
    try:
        conn.execute(_P.insert(), {"product_operator": k[0], "recharge_type": k[1], "product_code": k[2],
                                   "name": name, "price_tg": price_tg, "is_active": bool(active),
                                   "created_at": now, "updated_at": now})
        _record(conn, k, "add", actor, note, None, price_tg, now)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise Conflict("product_exists", f"{'/'.join(k)} is already in the catalogue") from None
    _done(k, "add", actor, price_tg=price_tg, active=int(bool(active)))
    return find_priced(k)


def set_active(operator, recharge_type, code, active, actor, note=None):
    """Enable or disable; returns (catalog.Priced, changed). Doing it twice changes nothing
    the second time and writes no history row."""
    k = key(operator, recharge_type, code)
    note = _note(note)
    now = utcnow()
    conn = db.session.connection()
    changed = conn.execute(_P.update().where(_where(k), _P.c.is_active.is_(not active))
                           .values(is_active=active, updated_at=now)).rowcount
    if changed:
        _record(conn, k, "enable" if active else "disable", actor, note, now=now)
        db.session.commit()
        _done(k, "enable" if active else "disable", actor)
    else:
        db.session.rollback()
    found = find_priced(k)
    if found is None:
        raise NotFound("unknown_product", f"no product {'/'.join(k)}")
    return found, bool(changed)


def set_price(operator, recharge_type, code, price_tg, actor, note=None, force=False):
    """Returns (old price, catalog.Priced). More than MAX_MOVE needs force."""
    k = key(operator, recharge_type, code)
    price_tg = parse_price(price_tg)
    note = _note(note)
    row = find(k)
    db.session.commit()
    if row is None:
        raise NotFound("unknown_product", f"no product {'/'.join(k)}")
    old = row.price_tg
    if old == price_tg:
        return old, find_priced(k)
    m = move(Decimal(old), Decimal(price_tg))
    if abs(m) > MAX_MOVE and not force:
        raise PriceMoveTooLarge(old, price_tg, m)
    _check_priceable(price_tg)
    now = utcnow()
    conn = db.session.connection()
    # Conditional on the price we checked: a change made meanwhile is not overwritten.
    if not conn.execute(_P.update().where(_where(k), _P.c.price_tg == old)
                        .values(price_tg=price_tg, updated_at=now)).rowcount:
        db.session.rollback()
        raise Conflict("product_changed_meanwhile", "the price changed while this change was made; look again")
    _record(conn, k, "set_price", actor, note, old, price_tg, now)
    db.session.commit()
    _done(k, "set_price", actor, old_price_tg=old, price_tg=price_tg, move=move_text(m).replace(" ", ""))
    return old, find_priced(k)


# -- reading ------------------------------------------------------------------------------

def _priced(row, rate):
    """The product with the customer's price at the active rate (None when it has none)."""
    if rate is None:
        return catalog.Priced(row, None)
    try:
        return catalog.Priced(row, price(row.price_tg, checked_rate(rate)))
    except PricingError:
        return catalog.Priced(row, None)


def find_priced(k):
    """The product `k` (on sale or not), Priced; None when there is none."""
    conn = db.session.connection()
    row = conn.execute(sa.select(_P).where(_where(k))).first()
    rate = conn.execute(sa.select(RATE)).scalar()
    db.session.commit()
    return row and _priced(row, rate)


def all_products():
    """Every product, on sale or not, priced at the active rate."""
    conn = db.session.connection()
    rows = conn.execute(sa.select(_P).order_by(_P.c.product_operator, _P.c.recharge_type, _P.c.price_tg,
                                               _P.c.id)).all()
    rate = conn.execute(sa.select(RATE)).scalar()
    db.session.commit()
    return [_priced(r, rate) for r in rows]


def changes(limit=HISTORY):
    """The latest product_changes rows, newest first."""
    rows = db.session.connection().execute(sa.select(_C).order_by(_C.c.id.desc()).limit(limit)).all()
    db.session.commit()
    return rows
