"""`flask elife product sync --msisdn NUMBER [--apply]`: our products against the
package list Unitel gives for a number (/service/servicetype).

Cards are credit (our VOICE), data packages our DATA. A package is matched to our
product by the operator's code (products.operator_code; a product without one by its own
code). Shown per package: new (we do not sell it), changed (name, English name, MNT
price, days or data differ), or the same; and our active products the list does not
carry. `--apply` adds the new ones (our code = the operator's) and updates the changed
ones; our CNY price follows from the MNT price at the active rate. A product missing from
one number's list is shown, never disabled: another number's list may carry it.
"""
import logging
from dataclasses import dataclass, field

import sqlalchemy as sa

from ..extensions import db
from ..logs import event
from ..models import Product
from ..shop.catalog import PRODUCT_CODE
from ..shop.pricing import RATE, PricingError, checked_rate, price, yuan
from ..timeutil import utcnow

log = logging.getLogger("elife.catalog")
OPERATOR = "UNITEL"
FIELDS = ("name", "eng_name", "price_tg", "days", "data")  # what the list decides


@dataclass
class Line:
    kind: str                  # new | changed | same | missing | skipped
    recharge_type: str
    code: str                  # ours (for new: the operator's, which becomes ours)
    operator_code: str
    values: dict               # the operator's (missing: ours)
    changes: dict = field(default_factory=dict)  # column -> (ours, the operator's)
    note: str = ""
    product_id: int | None = None


def diff(client, msisdn):
    """(servicetype, [Line]) for the number, as `client` (a UnitelClient) reads its list.
    Raises clients.unitel.Unreachable."""
    servicetype, packages = client.packages(msisdn)
    products = db.session.execute(sa.select(Product).where(Product.product_operator == OPERATOR)
                                  .order_by(Product.recharge_type, Product.price_tg, Product.id)).scalars().all()
    by_operator = {(p.recharge_type, p.operator_code or p.product_code): p for p in products}
    our_codes = {(p.recharge_type, p.product_code) for p in products}
    lines, seen = [], set()
    for pkg in packages:
        key = (pkg.recharge_type, pkg.code)
        if key in seen:
            continue  # listed in two groups: once is enough
        seen.add(key)
        product = by_operator.get(key)
        theirs = {"name": pkg.name or pkg.eng_name or pkg.code, "eng_name": pkg.eng_name or None,
                  "price_tg": pkg.price, "days": pkg.days, "data": pkg.data or None}
        if product is None:
            if not PRODUCT_CODE.fullmatch(pkg.code):
                lines.append(Line("skipped", pkg.recharge_type, pkg.code, pkg.code, theirs,
                                  note="its code is not one our API accepts"))
            elif key in our_codes:
                lines.append(Line("skipped", pkg.recharge_type, pkg.code, pkg.code, theirs,
                                  note="one of our products already has this code for another package"))
            else:
                lines.append(Line("new", pkg.recharge_type, pkg.code, pkg.code, theirs))
            continue
        changes = {c: (getattr(product, c), v) for c, v in theirs.items() if getattr(product, c) != v}
        if product.operator_code is None:
            changes["operator_code"] = (None, pkg.code)
        lines.append(Line("changed" if changes else "same", pkg.recharge_type, product.product_code, pkg.code,
                          theirs, changes, "" if product.is_active else "not on sale here",
                          product_id=product.id))
    for p in products:
        if p.is_active and (p.recharge_type, p.operator_code or p.product_code) not in seen:
            lines.append(Line("missing", p.recharge_type, p.product_code, p.operator_code or p.product_code,
                              {c: getattr(p, c) for c in FIELDS}, product_id=p.id,
                              note="not in this number's list (left as it is)"))
    db.session.commit()
    return servicetype, lines


def apply(lines):
    """Write the new and changed lines, in one transaction; (added, updated)."""
    now = utcnow()
    added = updated = 0
    for line in lines:
        if line.kind == "new":
            db.session.add(Product(product_code=line.code, product_operator=OPERATOR,
                                   recharge_type=line.recharge_type, is_active=True,
                                   operator_code=line.operator_code, created_at=now, updated_at=now,
                                   **line.values))
            added += 1
        elif line.kind == "changed":
            db.session.execute(sa.update(Product).where(Product.id == line.product_id).values(
                updated_at=now, **{c: theirs for c, (_, theirs) in line.changes.items()}))
            updated += 1
    db.session.commit()
    event(log, logging.WARNING if added or updated else logging.INFO, "product_sync_applied",
          added=added, updated=updated)
    return added, updated


def rate():
    """The active rate, or None (then no CNY price is shown)."""
    value = db.session.execute(sa.select(RATE)).scalar()
    db.session.commit()
    try:
        return checked_rate(value)
    except PricingError:
        return None


def describe(line, active_rate):
    v = line.values
    cny = "-"
    if active_rate is not None and v.get("price_tg") is not None:
        try:
            cny = f"{yuan(price(v['price_tg'], active_rate).total_fee)} CNY"
        except PricingError:
            cny = "not sold (under one fen or out of range)"
    what = (f"{v.get('name')!r} / {v.get('eng_name')!r}, {v.get('price_tg')} MNT = {cny}"
            f"{', %s days' % v['days'] if v.get('days') is not None else ''}"
            f"{', ' + v['data'] if v.get('data') else ''}")
    head = f"{line.recharge_type:<5} {line.code} ({line.operator_code})"
    mark = {"new": "+", "changed": "~", "same": "=", "missing": "-", "skipped": "!"}[line.kind]
    out = [f"  {mark} {head}: {what}" + (f"  [{line.note}]" if line.note else "")]
    for column, (ours, theirs) in line.changes.items():
        out.append(f"      {column}: {ours!r} -> {theirs!r}")
    return out
