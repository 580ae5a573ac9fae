"""Shipping abroad: where a product may go, what sending it costs, duties, and tracking.

**Where**: a product ships anywhere unless the admin set `ships_only_to` (a whitelist)
or `never_ships_to` (a blacklist); a country outside them is `not_shippable` (422).

**What it costs**: a shipping table per scope and currency, kept by the admin. The
table that applies to a product is, in this order, that of its `shipping_class`
("class:<name>"), that of its supplier ("supplier:<id>"), or the "default" one — in the
product's currency (prices are never converted). A table is a list of zones:

    {"name": "Asia", "countries": ["JP", "CN", ...] or ["*"] (every other country),
     "bands": [{"up_to_grams": 500, "price": 900}, ...],   # minor units
     "on_quote": false, "duty_rate_bp": null}

The first zone naming the country applies, else a "*" zone. The parcel weighs
`weight_grams × quantity`; the first band at or above it gives the price. Shipping is
"on quote" (no price is offered, checkout says so) when the zone says `on_quote`, the
parcel is heavier than every band, the product's weight is unknown, or no table exists
for the product's currency. A country no zone of the table covers is not shippable.

**Duties**: DAP (delivered at place: the buyer pays duties and taxes on delivery) unless
the zone has a `duty_rate_bp`; then DDP (delivered duty paid): duties =
goods × rate / 10000, rounded half up, are added to the total.

**Tracking**: a carrier and a tracking number on `ship`; the buyer's link comes from
`CARRIERS`, or a generic tracking site for any other carrier.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote as url_quote

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from orders.addresses import check_country, country_name
from orders.admin_catalog import check_currency
from orders.errors import Invalid, NotFound
from orders.models import Product, ShippingTable

MAX_ZONES = 50
MAX_BANDS = 20
MAX_PRICE = 2**31 - 1
MAX_GRAMS = 10_000_000  # 10 t: beyond it nothing ships as a parcel
MAX_DUTY_BP = 10_000  # 100 %
DEFAULT_SCOPE = "default"
CLASS_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,30}")

DAP_NOTE = ("DAP: duties and import taxes, if any, are not included and are paid by the buyer "
            "to the carrier or customs on delivery.")
DDP_NOTE = "DDP: duties and import taxes are included in the total."


class NotShippable(Invalid):
    code = "not_shippable"


class ShippingOnQuote(Invalid):
    code = "shipping_on_quote"


# --- where a product may go ------------------------------------------------------------

def _country_list(value: list[str] | None, field: str) -> list[str] | None:
    if value is None:
        return None
    if len(value) > 250:
        raise Invalid(f"{field} lists at most 250 countries", field=field)
    codes = [check_country(c, f"{field}.{i}") for i, c in enumerate(value)]
    return sorted(set(codes))


def refusal(product: Product, country: str) -> str | None:
    """Why `product` cannot go to `country`, or None if it can."""
    if product.ships_only_to is not None and country not in product.ships_only_to:
        return f"{product.name} ships only to {', '.join(product.ships_only_to) or 'nowhere'}"
    if product.never_ships_to and country in product.never_ships_to:
        return f"{product.name} does not ship to {country_name(country)}"
    return None


@dataclass(frozen=True)
class ProductShipping:
    """An admin's change of a product's shipping facts; None leaves a fact as it is,
    except where `clear` names it."""

    weight_grams: int | None = None
    shipping_class: str | None = None
    ships_only_to: list[str] | None = None
    never_ships_to: list[str] | None = None
    clear: frozenset[str] = frozenset()


async def change_product_shipping(session: AsyncSession, product_id: int, change: ProductShipping) -> Product:
    product = await session.get(Product, product_id)
    if product is None:
        raise NotFound(f"no product {product_id}")
    if change.weight_grams is not None:
        if not 1 <= change.weight_grams <= MAX_GRAMS:
            raise Invalid(f"weight_grams must be from 1 to {MAX_GRAMS}", field="weight_grams")
        product.weight_grams = change.weight_grams
    if change.shipping_class is not None:
        if not CLASS_NAME.fullmatch(change.shipping_class):
            raise Invalid("shipping_class is 1 to 31 of a-z, 0-9, _ and -", field="shipping_class")
        product.shipping_class = change.shipping_class
    if change.ships_only_to is not None:
        product.ships_only_to = _country_list(change.ships_only_to, "ships_only_to")
    if change.never_ships_to is not None:
        product.never_ships_to = _country_list(change.never_ships_to, "never_ships_to")
    for name in change.clear:
        if name not in ("weight_grams", "shipping_class", "ships_only_to", "never_ships_to"):
            raise Invalid(f"{name} cannot be cleared", field=name)
        setattr(product, name, None)
    await session.flush()
    return product


def product_shipping_public(product: Product) -> dict[str, Any]:
    return {
        "weight_grams": product.weight_grams,
        "shipping_class": product.shipping_class,
        "ships_only_to": product.ships_only_to,
        "never_ships_to": product.never_ships_to or [],
    }


# --- the tables ------------------------------------------------------------------------

def check_scope(scope: str) -> str:
    if scope == DEFAULT_SCOPE:
        return scope
    kind, _, rest = scope.partition(":")
    if kind == "supplier" and rest.isascii() and rest.isdigit() and 1 <= int(rest) <= 2**31 - 1 and len(rest) < 11:
        return f"supplier:{int(rest)}"
    if kind == "class" and CLASS_NAME.fullmatch(rest):
        return scope
    raise Invalid('scope is "default", "supplier:<id>" or "class:<name>"', field="scope")


def check_zones(zones: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The zones validated and normalised (Invalid names the field, e.g. zones.1.bands.0.price)."""
    if not 1 <= len(zones) <= MAX_ZONES:
        raise Invalid(f"a table has 1 to {MAX_ZONES} zones", field="zones")
    seen: dict[str, int] = {}
    result = []
    for z, zone in enumerate(zones):
        at = f"zones.{z}"
        name = str(zone.get("name") or "").strip()
        if not 1 <= len(name) <= 100:
            raise Invalid("a zone has a name of 1 to 100 characters", field=f"{at}.name")
        raw = zone.get("countries") or []
        if not raw:
            raise Invalid("a zone names at least one country, or \"*\" for every other", field=f"{at}.countries")
        countries = ["*"] if raw == ["*"] else _country_list(raw, f"{at}.countries")
        for country in countries or []:
            if country in seen:
                raise Invalid(f"{country} is in zones {seen[country]} and {z}", field=f"{at}.countries")
            seen[country] = z
        on_quote = bool(zone.get("on_quote", False))
        bands = []
        previous = 0
        raw_bands = zone.get("bands") or []
        if not on_quote and not raw_bands:
            raise Invalid("a zone has weight bands unless it is on quote", field=f"{at}.bands")
        if len(raw_bands) > MAX_BANDS:
            raise Invalid(f"a zone has at most {MAX_BANDS} bands", field=f"{at}.bands")
        for b, band in enumerate(raw_bands):
            up_to, price = band.get("up_to_grams"), band.get("price")
            if not isinstance(up_to, int) or not previous < up_to <= MAX_GRAMS:
                raise Invalid(f"up_to_grams rises from band to band, at most {MAX_GRAMS}",
                              field=f"{at}.bands.{b}.up_to_grams")
            if not isinstance(price, int) or not 0 <= price <= MAX_PRICE:
                raise Invalid(f"price is minor units from 0 to {MAX_PRICE}", field=f"{at}.bands.{b}.price")
            bands.append({"up_to_grams": up_to, "price": price})
            previous = up_to
        duty = zone.get("duty_rate_bp")
        if duty is not None and (not isinstance(duty, int) or not 0 <= duty <= MAX_DUTY_BP):
            raise Invalid(f"duty_rate_bp is basis points from 0 to {MAX_DUTY_BP}", field=f"{at}.duty_rate_bp")
        result.append({"name": name, "countries": countries, "bands": bands, "on_quote": on_quote,
                       "duty_rate_bp": duty})
    return result


def table_public(table: ShippingTable) -> dict[str, Any]:
    return {"id": table.id, "scope": table.scope, "currency": table.currency, "zones": table.zones,
            "updated_at": table.updated_at.isoformat()}


async def list_tables(session: AsyncSession) -> list[ShippingTable]:
    return list(await session.scalars(select(ShippingTable).order_by(ShippingTable.scope, ShippingTable.currency)))


async def put_table(session: AsyncSession, scope: str, currency: str, zones: list[dict[str, Any]],
                    at) -> tuple[ShippingTable, bool]:
    """Create or replace the table of (scope, currency); (table, created)."""
    scope = check_scope(scope)
    check_currency(currency)
    zones = check_zones(zones)
    if scope.startswith("supplier:"):
        from orders.models import Supplier

        if await session.get(Supplier, int(scope.partition(":")[2])) is None:
            raise Invalid(f"no supplier {scope.partition(':')[2]}", field="scope")
    table = await session.scalar(select(ShippingTable).where(ShippingTable.scope == scope,
                                                             ShippingTable.currency == currency))
    created = table is None
    if table is None:
        table = ShippingTable(scope=scope, currency=currency, zones=zones, updated_at=at)
        session.add(table)
    else:
        table.zones = zones
        table.updated_at = at
    await session.flush()
    return table, created


async def delete_table(session: AsyncSession, table_id: int) -> None:
    table = await session.get(ShippingTable, table_id)
    if table is None:
        raise NotFound(f"no shipping table {table_id}")
    await session.delete(table)
    await session.flush()


async def table_for(session: AsyncSession, product: Product) -> ShippingTable | None:
    scopes = [s for s in (f"class:{product.shipping_class}" if product.shipping_class else None,
                          f"supplier:{product.supplier_id}", DEFAULT_SCOPE) if s]
    rows = {t.scope: t for t in await session.scalars(
        select(ShippingTable).where(ShippingTable.scope.in_(scopes), ShippingTable.currency == product.currency))}
    return next((rows[s] for s in scopes if s in rows), None)


# --- a quote for one parcel ------------------------------------------------------------

@dataclass(frozen=True)
class Shipping:
    amount: int
    zone: str
    weight_grams: int
    scope: str
    incoterm: str  # DAP or DDP
    duty_rate_bp: int | None


async def shipping_for(session: AsyncSession, product: Product, quantity: int, country: str) -> Shipping:
    """What sending `quantity` of `product` to `country` costs; NotShippable or
    ShippingOnQuote (both 422, field `address_id`) when no price can be given."""
    why = refusal(product, country)
    if why is not None:
        raise NotShippable(why, field="address_id", country=country)
    table = await table_for(session, product)
    if table is None:
        raise ShippingOnQuote(f"shipping of {product.name} in {product.currency} is quoted on request",
                              field="address_id", country=country)
    zones = table.zones or []
    zone = next((z for z in zones if country in z["countries"]), None) or next(
        (z for z in zones if z["countries"] == ["*"]), None)
    if zone is None:
        raise NotShippable(f"{product.name} does not ship to {country_name(country)}", field="address_id",
                           country=country)
    if zone.get("on_quote"):
        raise ShippingOnQuote(f"shipping to {country_name(country)} ({zone['name']}) is quoted on request",
                              field="address_id", country=country, zone=zone["name"])
    if product.weight_grams is None:
        raise ShippingOnQuote(f"the weight of {product.name} is not known yet: shipping is quoted on request",
                              field="address_id", country=country)
    weight = product.weight_grams * quantity
    band = next((b for b in zone["bands"] if b["up_to_grams"] >= weight), None)
    if band is None:
        raise ShippingOnQuote(f"a parcel of {weight} g to {country_name(country)} is quoted on request",
                              field="address_id", country=country, zone=zone["name"])
    duty = zone.get("duty_rate_bp")
    return Shipping(amount=band["price"], zone=zone["name"], weight_grams=weight, scope=table.scope,
                    incoterm="DAP" if duty is None else "DDP", duty_rate_bp=duty)


def duties(goods: int, rate_bp: int | None) -> int | None:
    """Duties under DDP on the goods' value, rounded half up; None under DAP."""
    if rate_bp is None:
        return None
    return (goods * rate_bp + 5_000) // 10_000


# --- tracking --------------------------------------------------------------------------

# Carrier code → (name, tracking URL with {number}). Codes are matched case-insensitively
# with spaces, dots and dashes ignored; any other carrier gets GENERIC_TRACKING.
CARRIERS: dict[str, tuple[str, str]] = {
    "DHL": ("DHL Express", "https://www.dhl.com/global-en/home/tracking/tracking-express.html?submit=1&tracking-id={number}"),
    "FEDEX": ("FedEx", "https://www.fedex.com/fedextrack/?trknbr={number}"),
    "UPS": ("UPS", "https://www.ups.com/track?tracknum={number}"),
    "EMS": ("EMS (Korea Post)", "https://service.epost.go.kr/trace.RetrieveEmsRigiTraceList.comm?POST_CODE={number}"),
    "KOREAPOST": ("Korea Post", "https://service.epost.go.kr/trace.RetrieveEmsRigiTraceList.comm?POST_CODE={number}"),
    "CJ": ("CJ Logistics", "https://trace.cjlogistics.com/next/tracking.html?wblNo={number}"),
    "USPS": ("USPS", "https://tools.usps.com/go/TrackConfirmAction?tLabels={number}"),
}
GENERIC_TRACKING = "https://t.17track.net/en#nums={number}"
TRACKING_NUMBER = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{3,39}")


def carrier_code(carrier: str) -> str:
    return re.sub(r"[\s._-]+", "", carrier).upper()


def check_tracking(carrier: str | None, number: str | None) -> tuple[str, str] | None:
    """(carrier, number) as stored, or None when neither is given."""
    carrier = (carrier or "").strip() or None
    number = (number or "").strip() or None
    if carrier is None and number is None:
        return None
    if number is None or not TRACKING_NUMBER.fullmatch(number):
        raise Invalid("tracking_number is 4 to 40 letters, digits and dashes", field="tracking_number")
    if carrier is None or len(carrier) > 40:
        raise Invalid("carrier is required with a tracking number (at most 40 characters), e.g. DHL, EMS, CJ",
                      field="carrier")
    code = carrier_code(carrier)
    return (code if code in CARRIERS else carrier), number.upper()


def tracking_public(carrier: str | None, number: str | None) -> dict[str, Any] | None:
    if not number:
        return None
    known = CARRIERS.get(carrier_code(carrier or ""))
    template = known[1] if known else GENERIC_TRACKING
    return {"carrier": carrier, "carrier_name": known[0] if known else carrier, "number": number,
            "url": template.format(number=url_quote(number, safe=""))}


# --- the demo shop's table -----------------------------------------------------------

DEMO_WEIGHTS = {  # grams per unit, by demo product name
    "Jeju Organic Green Tea 100g": 150, "Yuja Honey Tea 1kg": 1200, "Dried Anchovy Gift Set": 800,
    "Seasoned Laver 20-pack": 300, "Snail Mucin Essence 100ml": 200, "Ginseng Night Cream 50ml": 120,
    "KF94 Mask (box of 50)": 400,
}
DEMO_ZONES = [
    {"name": "Korea", "countries": ["KR"], "bands": [{"up_to_grams": 2000, "price": 300},
                                                     {"up_to_grams": 20000, "price": 800}]},
    {"name": "Asia", "countries": ["CN", "JP", "VN", "TW", "HK", "TH", "PH", "SG", "MY", "ID", "MN"],
     "bands": [{"up_to_grams": 500, "price": 900}, {"up_to_grams": 2000, "price": 1800},
               {"up_to_grams": 10000, "price": 4500}]},
    {"name": "Russia and Central Asia", "countries": ["RU", "KZ", "UZ", "KG"], "on_quote": False,
     "bands": [{"up_to_grams": 500, "price": 1400}, {"up_to_grams": 2000, "price": 2600},
               {"up_to_grams": 10000, "price": 6000}]},
    {"name": "North America", "countries": ["US", "CA"], "duty_rate_bp": 800,
     "bands": [{"up_to_grams": 500, "price": 1500}, {"up_to_grams": 2000, "price": 2900},
               {"up_to_grams": 10000, "price": 7000}]},
    {"name": "Rest of the world", "countries": ["*"], "on_quote": True},
]


async def load_demo_shipping(session: AsyncSession, at) -> None:
    """Weights for the demo products and a default USD table (once)."""
    for product in await session.scalars(select(Product).where(Product.name.in_(DEMO_WEIGHTS))):
        if product.weight_grams is None:
            product.weight_grams = DEMO_WEIGHTS[product.name]
    exists = await session.scalar(select(ShippingTable.id).where(ShippingTable.scope == DEFAULT_SCOPE,
                                                                 ShippingTable.currency == "USD"))
    if exists is None:
        session.add(ShippingTable(scope=DEFAULT_SCOPE, currency="USD", zones=check_zones(DEMO_ZONES), updated_at=at))
    await session.flush()
