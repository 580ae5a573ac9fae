"""Money: integer minor units of a currency, in 64-bit columns, with a sane ceiling.

Every total is computed here, in Python (whose integers do not overflow), and refused
with 422 when it passes `MAX_TOTAL` — so an impossible figure never reaches a column or
a batch of other buyers' orders (issue 14, item 11: a 2^31-1 price times 2 failed a
whole batch on PostgreSQL's 32-bit columns).
"""

from __future__ import annotations

from orders.errors import Invalid

# 10^13 minor units: a hundred billion dollars in cents, far above any order or quote
# this service takes (a product's price is capped at 2^31-1, an order at
# `order_max_quantity`), and far below the 2^63-1 a BIGINT column holds.
MAX_TOTAL = 10**13


class TotalTooLarge(Invalid):
    code = "total_too_large"


def total(unit_price: int, quantity: int, *, field: str = "quantity") -> int:
    """unit_price × quantity; TotalTooLarge (422) beyond MAX_TOTAL."""
    amount = unit_price * quantity
    if not 0 <= amount <= MAX_TOTAL:
        raise TotalTooLarge(f"a total of {amount} minor units is beyond the {MAX_TOTAL} this service accepts",
                            field=field, max_total=MAX_TOTAL)
    return amount
