"""Exchange rates the admin keeps, and prices converted with them for the buyer's eyes.

Catalog prices stay in their own currency and buyers pay in it (issue 15, item 4); a
converted figure is only shown beside the price, as "≈ ₽1,930", with the date of the
rate it came from. So a missing rate is not an error: `convert` answers None and the
page shows the price alone.

**A rate** says what one unit of `base` is worth in `quote` (USD→RUB 87.25: $1 is
₽87.25), dated by the day the figure is from (`as_of`, never in the future). It is kept
to 12 decimal places as an integer × 10^12 (`RATE_SCALE`): exact on both databases, and
fine enough for KRW→USD 0.000712. A pair is kept in one direction only: putting RUB→USD
replaces a USD→RUB row, so two rows can never disagree.

**Which rate converts A to B**, in this order: the pair A→B; the inverse of B→A (1/rate,
kept as an exact fraction, never rounded); else a cross rate through one pivot P that
has a rate with both (A→P→B; USD first, then the pivot whose older leg is newest, then
by code), dated by its older leg. No path: None.

**Rounding**: minor units of A × rate × 10^(exponent of B) / 10^(exponent of A), computed
exactly (fractions) and rounded once, half away from zero, to B's minor unit. Exponents
are Babel's (CLDR): KRW, JPY, VND 0; USD, RUB, CNY 2; KWD 3. The pages convert in the
browser with the same figure (`minor_factor`, sent as an integer fraction) and the same
rounding in BigInt arithmetic (web/static/js/prices.js), so both sides agree to the unit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from fractions import Fraction

from babel.numbers import get_currency_precision, get_territory_currencies
from sqlalchemy import delete, func, or_, and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from orders.admin_catalog import check_currency
from orders.errors import Invalid, NotFound
from orders.models import ExchangeRate

RATE_DECIMALS = 12
RATE_SCALE = 10**RATE_DECIMALS
MAX_RATE = Decimal(1_000_000)  # a unit of any currency worth at most a million of another
MAX_RATES = 200  # pairs kept: a table to read at a glance (and to send to every page)
PREFERRED_PIVOT = "USD"  # the catalog's usual currency, so the likeliest cross rate
# A date "from the future" anywhere on Earth: the admin's today may be UTC's tomorrow.
LATEST_ZONE_AHEAD = timedelta(hours=14)


class RateRefused(Invalid):
    code = "invalid_rate"


@dataclass(frozen=True)
class Rate:
    """A usable rate from `source` to `target` (direct, inverse or through `via`)."""

    source: str
    target: str
    value: Fraction  # units of target per unit of source
    as_of: date | None  # None only for a currency to itself
    via: str | None = None


@dataclass(frozen=True)
class Converted:
    amount: int  # minor units of `currency`
    currency: str
    as_of: date | None
    rate: Rate


# --- currencies and amounts -----------------------------------------------------------

def exponent(currency: str) -> int:
    """The currency's minor-unit digits (CLDR via Babel): KRW 0, USD 2, KWD 3."""
    return get_currency_precision(currency)


def minor_factor(rate: Fraction, source: str, target: str) -> Fraction:
    """What one minor unit of `source` is in minor units of `target` at `rate`."""
    return rate * Fraction(10 ** exponent(target), 10 ** exponent(source))


def round_half_away(value: Fraction) -> int:
    """To the nearest integer, halves away from zero (2.5 → 3, -2.5 → -3)."""
    magnitude = (2 * abs(value.numerator) + value.denominator) // (2 * value.denominator)
    return magnitude if value >= 0 else -magnitude


def convert_amount(amount: int, rate: Fraction, source: str, target: str) -> int:
    """Minor units of `source` → minor units of `target`, rounded once (see the module)."""
    return round_half_away(amount * minor_factor(rate, source, target))


def country_currency(country: str | None) -> str | None:
    """The currency a country uses today (RU → RUB, VN → VND), or None."""
    if not country:
        return None
    try:
        currencies = get_territory_currencies(country.upper(), tender=True)
    except Exception:  # noqa: BLE001 - an unknown territory has no currency
        return None
    return currencies[0] if currencies else None


# --- input ----------------------------------------------------------------------------

def parse_rate(value: str | int | float | Decimal) -> int:
    """A positive rate ("87.25", 87.25) → the stored integer (× 10^12), rounded half up
    to 12 decimal places. A JSON number is read by its shortest repr (0.1 is "0.1")."""
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise RateRefused(f"rate {value!r} is not a number", field="rate") from None
    if not number.is_finite() or number <= 0:
        raise RateRefused("rate must be a number above 0", field="rate")
    if number > MAX_RATE:
        raise RateRefused(f"rate must be at most {MAX_RATE}", field="rate")
    with localcontext() as context:
        context.prec = 40
        scaled = int((number * RATE_SCALE).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    if scaled == 0:
        raise RateRefused(f"rate must be at least 1e-{RATE_DECIMALS}", field="rate")
    return scaled


def rate_text(scaled: int) -> str:
    """The stored integer as the decimal the admin typed ("87.25")."""
    return format(Decimal(scaled).scaleb(-RATE_DECIMALS).normalize(), "f")


def fraction_text(value: Fraction, digits: int = 8) -> str:
    """A derived rate (an inverse or cross one, often a repeating decimal) to `digits`
    significant digits, for reading only."""
    with localcontext() as context:
        context.prec = digits
        result = Decimal(value.numerator) / Decimal(value.denominator)
    return format(result.normalize(), "f")


def check_as_of(as_of: date, now: datetime) -> date:
    if as_of > (now + LATEST_ZONE_AHEAD).date():
        raise RateRefused("as_of must not be in the future", field="as_of")
    if as_of.year < 2000:
        raise RateRefused("as_of must be in 2000 or later", field="as_of")
    return as_of


# --- storage --------------------------------------------------------------------------

def _pair(base: str, quote: str):
    return or_(and_(ExchangeRate.base == base, ExchangeRate.quote == quote),
               and_(ExchangeRate.base == quote, ExchangeRate.quote == base))


async def set_rate(session: AsyncSession, base: str, quote: str, rate: str | int | float | Decimal,
                   as_of: date, now: datetime) -> tuple[ExchangeRate, bool]:
    """Create or replace the rate of a pair (either direction); (row, created)."""
    check_currency(base, "base")
    check_currency(quote, "quote")
    if base == quote:
        raise RateRefused("base and quote must be two currencies", field="quote")
    scaled = parse_rate(rate)
    check_as_of(as_of, now)
    rows = list(await session.scalars(select(ExchangeRate).where(_pair(base, quote))))
    row = next((r for r in rows if r.base == base), None)
    for reverse in (r for r in rows if r.base != base):  # one direction per pair
        await session.delete(reverse)
    created = row is None and not rows
    if row is None:
        if created and await session.scalar(select(func.count()).select_from(ExchangeRate)) >= MAX_RATES:
            raise RateRefused(f"at most {MAX_RATES} exchange rates are kept; delete one first",
                              field="base", max_rates=MAX_RATES)
        await session.flush()  # the reverse row's delete before the insert
        row = ExchangeRate(base=base, quote=quote, rate_scaled=scaled, as_of=as_of, updated_at=now)
        session.add(row)
    else:
        row.rate_scaled, row.as_of, row.updated_at = scaled, as_of, now
    await session.flush()
    return row, created


async def delete_rate(session: AsyncSession, base: str, quote: str) -> None:
    """Forget the rate of a pair (either direction)."""
    result = await session.execute(delete(ExchangeRate).where(_pair(base, quote)))
    if not result.rowcount:
        raise NotFound(f"no exchange rate between {base} and {quote}")


async def list_rates(session: AsyncSession) -> list[ExchangeRate]:
    return list(await session.scalars(
        select(ExchangeRate).order_by(ExchangeRate.base, ExchangeRate.quote).limit(MAX_RATES)))


def rate_public(row: ExchangeRate) -> dict[str, object]:
    return {"base": row.base, "quote": row.quote, "rate": rate_text(row.rate_scaled),
            "as_of": row.as_of.isoformat(), "updated_at": row.updated_at.isoformat()}


# --- converting -----------------------------------------------------------------------

class RateTable:
    """The stored rates, read once, answering any pair in memory (see the module)."""

    def __init__(self, rows: Iterable[ExchangeRate]) -> None:
        self._direct: dict[tuple[str, str], Rate] = {}
        for row in rows:
            value = Fraction(row.rate_scaled, RATE_SCALE)
            self._direct[(row.base, row.quote)] = Rate(row.base, row.quote, value, row.as_of)
            self._direct.setdefault((row.quote, row.base), Rate(row.quote, row.base, 1 / value, row.as_of))

    def currencies(self) -> list[str]:
        return sorted({currency for pair in self._direct for currency in pair})

    def rate(self, source: str, target: str) -> Rate | None:
        if source == target:
            return Rate(source, target, Fraction(1), None)
        found = self._direct.get((source, target))
        if found is not None:
            return found
        legs = []
        for pivot in self.currencies():
            first, second = self._direct.get((source, pivot)), self._direct.get((pivot, target))
            if first is not None and second is not None:
                legs.append((first, second))
        if not legs:
            return None
        first, second = min(legs, key=lambda pair: (
            pair[0].target != PREFERRED_PIVOT, -min(pair[0].as_of, pair[1].as_of).toordinal(), pair[0].target))
        return Rate(source, target, first.value * second.value, min(first.as_of, second.as_of), via=first.target)

    def convert(self, amount: int, source: str, target: str) -> Converted | None:
        """`amount` minor units of `source` in `target`, or None when no rate is known."""
        rate = self.rate(source, target)
        if rate is None:
            return None
        return Converted(convert_amount(amount, rate.value, source, target), target, rate.as_of, rate)

    def conversions_to(self, target: str) -> dict[str, dict[str, object]]:
        """For a page converting into `target`: each known currency's rate, date and
        minor-unit factor (an integer fraction, so the browser rounds exactly as here)."""
        result: dict[str, dict[str, object]] = {}
        for source in self.currencies():
            rate = self.rate(source, target) if source != target else None
            if rate is None:
                continue
            factor = minor_factor(rate.value, source, target)
            result[source] = {
                "rate": fraction_text(rate.value), "as_of": rate.as_of.isoformat() if rate.as_of else None,
                "via": rate.via, "factor": [str(factor.numerator), str(factor.denominator)],
            }
        return result


async def rate_table(session: AsyncSession) -> RateTable:
    return RateTable(await list_rates(session))


async def convert(session: AsyncSession, amount: int, source: str, target: str) -> Converted | None:
    """One conversion with the stored rates (reads them all: for many, use `rate_table`)."""
    return (await rate_table(session)).convert(amount, source, target)


# --- the demo -------------------------------------------------------------------------

DEMO_RATES = (  # (base, quote, rate): late-2026 figures, for the demo only
    ("USD", "KRW", "1380"),
    ("USD", "RUB", "87.75"),
    ("USD", "CNY", "7.12"),
    ("USD", "VND", "25400"),
    ("USD", "EUR", "0.92"),
)


async def load_demo_rates(session: AsyncSession, now: datetime) -> None:
    """The demo's rates, dated today; an existing pair is left as the admin set it."""
    existing = {(r.base, r.quote) for r in await list_rates(session)}
    for base, quote, rate in DEMO_RATES:
        if (base, quote) not in existing and (quote, base) not in existing:
            await set_rate(session, base, quote, rate, now.date(), now)
