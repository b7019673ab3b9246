"""MNT price -> CNY, in integer fen. The one rounding rule lives here.

Rule: fen = price_tg * rate * 100, rounded half up to a whole fen (Decimal, never
float). priceRmb is fen / 100 with two places, so priceRmb * 100 == totalFee always
holds -- the seed's amount check (ROUND(product_price_rmb * 100)) agrees with it.
"""
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

import sqlalchemy as sa

from ..errors import DomainError
from ..models import ExchangeRate

RATE_CURRENCY = "MNT_TO_CNY"
MAX_TOTAL_FEE = 10_000_000  # 100,000 yuan: no top-up costs that; guards a bad rate


class PricingError(DomainError):
    """price_unavailable (this product) or no_exchange_rate (our configuration)."""


@dataclass(frozen=True)
class Price:
    price_tg: int
    rate: Decimal
    total_fee: int  # fen

    @property
    def price_rmb(self):
        return (Decimal(self.total_fee) / 100).quantize(Decimal("0.01"))


def fen_for(price_tg, rate):
    if not isinstance(price_tg, int) or isinstance(price_tg, bool):
        raise TypeError("price_tg must be an int")
    if not isinstance(rate, Decimal):
        raise TypeError("rate must be a Decimal")
    return int((Decimal(price_tg) * rate * 100).quantize(Decimal("1"), rounding=ROUND_HALF_UP))


def price(price_tg, rate):
    fee = fen_for(price_tg, rate)
    if fee <= 0:
        raise PricingError("price_unavailable", "this product would cost less than one fen")
    if fee > MAX_TOTAL_FEE:
        raise PricingError("price_unavailable", "this product's price is out of range")
    return Price(price_tg, rate, fee)


_R = ExchangeRate.__table__
# The newest active MNT->CNY rate; a scalar subquery so the catalogue reads it in the
# same statement as its products.
RATE = (sa.select(_R.c.rate).where(_R.c.currency == RATE_CURRENCY, _R.c.is_active.is_(True))
        .order_by(_R.c.id.desc()).limit(1).scalar_subquery().label("rate"))


def checked_rate(value):
    """The rate as read (RATE), or a PricingError when there is none usable."""
    if value is None or Decimal(value) <= 0:
        raise PricingError("no_exchange_rate", "no active MNT to CNY exchange rate is configured")
    return Decimal(value)


def yuan(fen):
    """Fen as the 2-place string the API shows (never a float)."""
    return str((Decimal(fen) / 100).quantize(Decimal("0.01")))
