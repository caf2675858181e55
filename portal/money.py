"""Money arithmetic: Decimal, two places, half up to the cent (as invoices are read by people)."""

from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
ZERO = Decimal("0.00")


def round_money(value: Decimal | int | str) -> Decimal:
    """Round to the cent, halves away from zero (3 x 0.335 = 1.005 -> 1.01)."""
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)
