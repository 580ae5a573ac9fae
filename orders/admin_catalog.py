"""Changing the catalog: what an operator adds and edits from the admin page.

Suppliers, products (and their price and stock), packages and special exhibitions.
The schema's CHECKs (stock, price ≥ 0, moq ≥ 1) are the last line; these functions
refuse bad input first, with the field at fault, so the admin sees which field to fix
instead of a constraint name. Reads stay in orders/catalog.py.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from babel.numbers import list_currencies
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from orders.catalog import committee_by_code
from orders.errors import Conflict, Invalid, NotFound
from orders.models import (
    MAX_ID,
    ON_AIR,
    Exhibition,
    ExhibitionProduct,
    PackageItem,
    Product,
    ProductKind,
    Segment,
    SegmentProduct,
    Show,
    Supplier,
)

MAX_INT = 2**31 - 1  # every money, stock and quantity column is a 4-byte INTEGER
MAX_PACKAGE_ITEMS = 50
MAX_EXHIBITION_PRODUCTS = 200
_CURRENCIES = frozenset(list_currencies())
_products = Product.__table__


class NotEnoughStock(Conflict):
    """A write-off larger than what is left (orders may have taken units meanwhile)."""

    code = "not_enough_stock"


@dataclass(frozen=True)
class PackageLine:
    product_id: int
    quantity: int


@dataclass(frozen=True)
class ExhibitionLine:
    product_id: int
    price: int  # minor units of `currency`
    currency: str  # what the admin priced it in: must be the product's own


def check_currency(currency: str, field: str = "currency") -> str:
    if not re.fullmatch(r"[A-Z]{3}", currency) or currency not in _CURRENCIES:
        raise Invalid(f"{currency!r} is not an ISO 4217 currency code such as KRW or USD", field=field)
    return currency


def _check_amount(value: int, field: str, *, least: int = 0) -> None:
    if not least <= value <= MAX_INT:
        raise Invalid(f"{field} must be from {least} to {MAX_INT}", field=field)


def _check_image_url(url: str | None) -> None:
    # Pages allow images from https: only (CSP img-src), so anything else would not show.
    if url is not None and not re.fullmatch(r"https://[^\s<>\"']{1,492}", url):
        raise Invalid("image_url must be an https:// address", field="image_url")


# --- suppliers and products -------------------------------------------------------

async def add_supplier(session: AsyncSession, *, name: str, region: str) -> Supplier:
    supplier = Supplier(name=name, region=region)
    session.add(supplier)
    await session.flush()
    return supplier


async def add_product(
    session: AsyncSession,
    *,
    supplier_id: int,
    committee: str,
    name: str,
    price: int,
    currency: str,
    stock: int = 0,
    kind: ProductKind = ProductKind.retail,
    moq: int = 1,
    description: str = "",
    image_url: str | None = None,
) -> Product:
    check_currency(currency)
    _check_amount(price, "price")
    _check_amount(stock, "stock")
    _check_amount(moq, "moq", least=1)
    _check_image_url(image_url)
    if await session.get(Supplier, supplier_id) is None:
        raise Invalid(f"no supplier {supplier_id}", field="supplier_id")
    try:
        found = await committee_by_code(session, committee)
    except NotFound as exc:
        raise Invalid(exc.message, field="committee") from None
    product = Product(
        supplier_id=supplier_id, committee_id=found.id, name=name, description=description, price=price,
        currency=currency, stock=stock, kind=kind, moq=moq, image_url=image_url,
    )
    session.add(product)
    await session.flush()
    await session.refresh(product)  # load supplier and committee for the reply
    return product


_UNSET = object()


async def change_product(
    session: AsyncSession,
    product_id: int,
    *,
    restock: int = 0,
    price: int | None = None,
    name: str | None = None,
    description: str | None = None,
    moq: int | None = None,
    image_url: str | None | object = _UNSET,
) -> Product:
    """Change a product's price, details and stock in one UPDATE statement.

    Stock moves by `restock` units (negative writes units off), never to an absolute
    figure. The order desk (orders/inventory.py) takes stock with conditional UPDATEs
    under the row's write lock and writes back what its batch left. A relative
    `stock = stock + n` waits for that lock and then applies to the committed figure
    (PostgreSQL re-reads the row after the wait; SQLite has one writer at a time), so
    units sold while the admin was typing stay sold and books balance: received +
    before = sold + left. An absolute "stock = 50" typed from a page read a moment
    earlier would silently undo the sales made in between.

    Call it first in its transaction: on SQLite the UPDATE must take the write lock
    before anything is read, as `lock_stock` explains.
    """
    if price is not None:
        _check_amount(price, "price")
    if moq is not None:
        _check_amount(moq, "moq", least=1)
    if not -MAX_INT <= restock <= MAX_INT:
        raise Invalid(f"restock must be from {-MAX_INT} to {MAX_INT}", field="restock")
    if image_url is not _UNSET:
        _check_image_url(image_url)  # type: ignore[arg-type]
    values: dict[str, object] = {}
    if restock:
        values["stock"] = _products.c.stock + restock
    for column, value in (("price", price), ("name", name), ("description", description), ("moq", moq)):
        if value is not None:
            values[column] = value
    if image_url is not _UNSET:
        values["image_url"] = image_url
    if not values:
        values["stock"] = _products.c.stock  # nothing to change: still prove the row exists
    conditions = [_products.c.id == product_id]
    if restock < 0:
        conditions.append(_products.c.stock >= -restock)
    elif restock > 0:
        conditions.append(_products.c.stock <= MAX_INT - restock)  # int4 would overflow
    changed = await session.scalar(update(_products).where(*conditions).values(**values).returning(_products.c.id))
    if changed is None:
        stock = await session.scalar(select(_products.c.stock).where(_products.c.id == product_id))
        if stock is None:
            raise NotFound(f"no product {product_id}")
        if restock < 0:
            raise NotEnoughStock(f"only {stock} in stock: cannot write off {-restock}", field="restock", stock=stock)
        raise Invalid(f"stock would exceed {MAX_INT}", field="restock")
    product = await session.get(Product, product_id, populate_existing=True)
    assert product is not None
    return product


async def live_shows_offering(session: AsyncSession, product_id: int) -> list[int]:
    """Live shows that have the product pinned or in a segment's line-up: the rooms
    whose viewers see its stock."""
    lined_up = (
        select(Segment.show_id)
        .join(SegmentProduct, SegmentProduct.segment_id == Segment.id)
        .where(SegmentProduct.product_id == product_id)
    )
    rows = await session.scalars(
        select(Show.id)
        .where(Show.status.in_(ON_AIR))
        .where((Show.pinned_product_id == product_id) | Show.id.in_(lined_up))
        .order_by(Show.id)
    )
    return list(rows)


# --- packages -----------------------------------------------------------------------

async def define_package(session: AsyncSession, package_id: int, lines: Sequence[PackageLine]) -> Product:
    """Make an industrial product a package of other products (replacing any earlier
    make-up). Packages do not nest: a component may not be a package, and a product
    that is some package's component may not become one, so no package can contain
    itself however far one follows its parts."""
    package = await session.get(Product, package_id)
    if package is None:
        raise Invalid(f"no product {package_id}", field="package_id")
    if package.kind is not ProductKind.industrial:
        raise Invalid("a package is an industrial product: create it with kind industrial", field="package_id")
    if not lines:
        raise Invalid("a package has at least one component", field="items")
    if await session.scalar(select(PackageItem.package_id).where(PackageItem.product_id == package_id).limit(1)):
        raise Invalid("this product is a component of another package; packages do not nest", field="package_id")
    # Which components exist and which are packages themselves: two queries, not two a line.
    wanted = [line.product_id for line in lines if 1 <= line.product_id <= MAX_ID]
    existing = set(await session.scalars(select(Product.id).where(Product.id.in_(wanted))))
    packages = set(await session.scalars(
        select(PackageItem.package_id).where(PackageItem.package_id.in_(wanted)).distinct()))
    seen: set[int] = set()
    for index, line in enumerate(lines):
        field = f"items.{index}"
        if line.product_id == package_id:
            raise Invalid("a package cannot contain itself", field=f"{field}.product_id")
        if line.product_id in seen:
            raise Invalid(f"product {line.product_id} is listed twice", field=f"{field}.product_id")
        seen.add(line.product_id)
        _check_amount(line.quantity, f"{field}.quantity", least=1)
        if line.product_id not in existing:
            raise Invalid(f"no product {line.product_id}", field=f"{field}.product_id")
        if line.product_id in packages:
            raise Invalid(f"product {line.product_id} is itself a package; packages do not nest",
                          field=f"{field}.product_id")
    await session.execute(delete(PackageItem).where(PackageItem.package_id == package_id))
    session.add_all(PackageItem(package_id=package_id, product_id=line.product_id, quantity=line.quantity)
                    for line in lines)
    await session.flush()
    return package


# --- exhibitions --------------------------------------------------------------------

async def add_exhibition(
    session: AsyncSession,
    *,
    title: str,
    partner: str,
    starts_at: datetime,
    ends_at: datetime,
    lines: Sequence[ExhibitionLine] = (),
) -> Exhibition:
    """A special exhibition with its products' exhibition prices. Prices are in each
    product's own currency (the column has none of its own), so a line priced in
    another currency is refused rather than read as a different amount."""
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        raise Invalid("exhibition times need a time zone", field="starts_at")
    if ends_at <= starts_at:
        raise Invalid("the exhibition must end after it starts", field="ends_at")
    wanted = [line.product_id for line in lines if 1 <= line.product_id <= MAX_ID]
    products = {p.id: p for p in await session.scalars(select(Product).where(Product.id.in_(wanted)))}
    seen: set[int] = set()
    for index, line in enumerate(lines):
        field = f"products.{index}"
        if line.product_id in seen:
            raise Invalid(f"product {line.product_id} is listed twice", field=f"{field}.product_id")
        seen.add(line.product_id)
        _check_amount(line.price, f"{field}.price")
        product = products.get(line.product_id)
        if product is None:
            raise Invalid(f"no product {line.product_id}", field=f"{field}.product_id")
        if line.currency != product.currency:
            raise Invalid(f"{product.name} is priced in {product.currency}, not {line.currency}",
                          field=f"{field}.currency")
    exhibition = Exhibition(title=title, partner=partner, starts_at=starts_at, ends_at=ends_at)
    session.add(exhibition)
    await session.flush()
    session.add_all(ExhibitionProduct(exhibition_id=exhibition.id, product_id=line.product_id, price=line.price)
                    for line in lines)
    await session.flush()
    return exhibition


def supplier_public(supplier: Supplier) -> dict:
    return {"id": supplier.id, "name": supplier.name, "region": supplier.region}


async def exhibition_public(session: AsyncSession, exhibition: Exhibition) -> dict:
    rows = await session.execute(
        select(ExhibitionProduct.product_id, ExhibitionProduct.price, Product.currency)
        .join(Product, Product.id == ExhibitionProduct.product_id)
        .where(ExhibitionProduct.exhibition_id == exhibition.id)
        .order_by(ExhibitionProduct.product_id)
    )
    return {
        "id": exhibition.id,
        "title": exhibition.title,
        "partner": exhibition.partner,
        "starts_at": exhibition.starts_at.isoformat(),
        "ends_at": exhibition.ends_at.isoformat(),
        "products": [{"product_id": pid, "price": price, "currency": cur} for pid, price, cur in rows.all()],
    }
