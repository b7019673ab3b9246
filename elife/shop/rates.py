"""The MNT->CNY exchange rate: reading it, its history, and changing it safely.

A slip of a digit reprices every order, so a new rate must be a plain positive decimal
with at most 8 places (the column's scale), and a move of more than MAX_MOVE from the
active rate is refused unless the caller says `force`. The change is one transaction:
the old row is made inactive by a conditional UPDATE (rowcount 1: it was still the
active one) and the new row inserted active, with who set it and why. Orders keep the
rate and price they were created with: they store both.
"""
import logging
import re
from decimal import Decimal

import sqlalchemy as sa

from ..errors import Conflict, Invalid
from ..extensions import db
from ..logs import event
from ..models import ExchangeRate
from ..timeutil import utcnow
from .pricing import RATE_CURRENCY

log = logging.getLogger("elife.rates")

MAX_MOVE = Decimal("0.10")  # a larger move needs force
NOTE_MAX = 255
HISTORY = 10
# Numeric(18, 8): at most 10 digits before the point, 8 after.
_RATE = re.compile(r"[0-9]{1,10}(?:\.[0-9]{1,8})?")
_R = ExchangeRate.__table__


class RateError(Invalid):
    """invalid_rate, missing_note or note_too_long."""


class RateMoveTooLarge(Conflict):
    """rate_change_too_large: more than MAX_MOVE from the active rate, without force."""

    def __init__(self, old, new, move):
        super().__init__("rate_change_too_large",
                         f"{new} is {move_text(move)} from the active rate {old}; "
                         f"more than {int(MAX_MOVE * 100)} % needs confirming (--force)")
        self.old, self.new, self.move = old, new, move


def parse_rate(raw):
    """'0.0021' -> Decimal('0.0021'); a RateError for anything but a plain positive decimal
    with at most 8 places ('1e-3', '-0.002', '0', '0.000000001', ' ', 'NaN' ...)."""
    text = raw.strip() if isinstance(raw, str) else None
    if not text or not _RATE.fullmatch(text):
        raise RateError("invalid_rate", "the rate must be a positive decimal with at most 8 places, "
                                        "e.g. 0.00210000 (yuan for one tugrik)")
    rate = Decimal(text)
    if rate <= 0:
        raise RateError("invalid_rate", "the rate must be greater than 0")
    return rate


def clean_note(raw):
    note = " ".join(str(raw or "").split())
    if not note:
        raise RateError("missing_note", "write a note: why does the rate change?")
    if len(note) > NOTE_MAX:
        raise RateError("note_too_long", f"the note is longer than {NOTE_MAX} characters")
    return note


def move(old, new):
    """The relative move from old to new (0.1 is 10 %)."""
    return (new - old) / old


def move_text(m):
    return f"{'+' if m >= 0 else ''}{(m * 100).quantize(Decimal('0.01'))} %"


def active():
    """The active rate's row (newest active, as pricing.RATE reads it), or None."""
    row = db.session.connection().execute(
        sa.select(_R).where(_R.c.currency == RATE_CURRENCY, _R.c.is_active.is_(True))
        .order_by(_R.c.id.desc()).limit(1)).first()
    return row


def history(limit=HISTORY):
    """The newest `limit` rates, active or not, newest first."""
    rows = db.session.connection().execute(
        sa.select(_R).where(_R.c.currency == RATE_CURRENCY).order_by(_R.c.id.desc()).limit(limit)).all()
    db.session.commit()
    return rows


def check(new, force=False):
    """(active row or None, move or None): the guard alone, for a confirmation page. Raises
    RateMoveTooLarge when the move is too large and not forced."""
    old = active()
    db.session.commit()
    if old is None:
        return None, None
    m = move(Decimal(old.rate), new)
    if abs(m) > MAX_MOVE and not force:
        raise RateMoveTooLarge(Decimal(old.rate), new, m)
    return old, m


def set_rate(raw_rate, actor, note, force=False):
    """Make `raw_rate` the active rate. Returns (old rate or None, new rate).

    The guard is checked against the row that is replaced: if another change replaced it
    meanwhile, the conditional UPDATE matches nothing and this one is refused
    (rate_changed_meanwhile) rather than applied against a rate nobody looked at."""
    new = parse_rate(raw_rate)
    note = clean_note(note)
    old, m = check(new, force)
    now = utcnow()
    conn = db.session.connection()
    try:
        if old is not None:
            # Every active row goes (there should be one); the one we checked must be among them.
            gone = conn.execute(_R.update().where(_R.c.id == old.id, _R.c.is_active.is_(True))
                                .values(is_active=False, updated_at=now)).rowcount
            if gone != 1:
                raise Conflict("rate_changed_meanwhile",
                               "the active rate changed while this change was made; look at it again")
            conn.execute(_R.update().where(_R.c.currency == RATE_CURRENCY, _R.c.is_active.is_(True))
                         .values(is_active=False, updated_at=now))
        conn.execute(_R.insert(), {"currency": RATE_CURRENCY, "rate": new, "is_active": True,
                                   "created_at": now, "updated_at": now, "set_by": actor[:64],
                                   "note": note})
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    new = new.quantize(Decimal("0.00000001"))  # as stored: Numeric(18, 8)
    old_rate = Decimal(old.rate) if old is not None else None
    event(log, logging.WARNING if m is not None and abs(m) > MAX_MOVE else logging.INFO, "rate_changed",
          old=old_rate if old_rate is not None else "none", new=new,
          move=move_text(m) if m is not None else "first", forced=int(bool(force)), actor=actor)
    return old_rate, new
