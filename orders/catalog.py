"""The catalog: committees, suppliers, products, packages and exhibition prices."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from orders.errors import NotFound
from orders.models import Committee, Exhibition, ExhibitionProduct, PackageItem, Product
from orders.product_images import image_public, media_url

MAX_PRODUCTS_LISTED = 200


async def list_committees(session: AsyncSession) -> list[Committee]:
    return list(await session.scalars(select(Committee).order_by(Committee.id)))


async def committee_by_code(session: AsyncSession, code: str) -> Committee:
    committee = await session.scalar(select(Committee).where(Committee.code == code))
    if committee is None:
        raise NotFound(f"no committee {code!r}")
    return committee


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def list_products(
    session: AsyncSession, *, committee: str | None = None, q: str | None = None, limit: int = MAX_PRODUCTS_LISTED
) -> list[Product]:
    stmt = select(Product).order_by(Product.id).limit(min(limit, MAX_PRODUCTS_LISTED))
    if committee:
        stmt = stmt.join(Product.committee).where(Committee.code == committee)
    if q:
        # Case-insensitive substring search; ILIKE on PostgreSQL, LIKE (ASCII-insensitive) on SQLite.
        pattern = f"%{_escape_like(q)}%"
        stmt = stmt.where(
            or_(Product.name.ilike(pattern, escape="\\"), Product.description.ilike(pattern, escape="\\"))
        )
    return list(await session.scalars(stmt))


async def get_product(session: AsyncSession, product_id: int) -> Product:
    product = await session.get(Product, product_id)
    if product is None:
        raise NotFound(f"no product {product_id}")
    return product


async def package_items(session: AsyncSession, package_id: int) -> list[tuple[Product, int]]:
    rows = await session.execute(
        select(Product, PackageItem.quantity)
        .join(PackageItem, PackageItem.product_id == Product.id)
        .where(PackageItem.package_id == package_id)
        .order_by(Product.id)
    )
    return [(product, quantity) for product, quantity in rows.all()]


async def exhibition_price(
    session: AsyncSession, exhibition_id: int | None, product_id: int, at: datetime
) -> int | None:
    """The exhibition price of a product if the exhibition runs at `at` and covers it."""
    if exhibition_id is None:
        return None
    return await session.scalar(
        select(ExhibitionProduct.price)
        .join(Exhibition, Exhibition.id == ExhibitionProduct.exhibition_id)
        .where(
            ExhibitionProduct.exhibition_id == exhibition_id,
            ExhibitionProduct.product_id == product_id,
            Exhibition.starts_at <= at,
            Exhibition.ends_at >= at,
        )
    )


def committee_public(committee: Committee) -> dict:
    return {"code": committee.code, "name_ko": committee.name_ko, "name_en": committee.name_en}


def product_public(product: Product) -> dict:
    return {
        "id": product.id,
        "name": product.name,
        "description": product.description,
        "price": product.price,
        "currency": product.currency,
        "stock": product.stock,
        "kind": product.kind.value,
        "moq": product.moq,
        # The uploaded pictures (orders/product_images.py), main one first; `image_url` is
        # kept for older clients: the main picture's medium size, else the address given.
        "images": images_public(product),
        "image_url": main_image_url(product),
        "committee": product.committee.code,
        "supplier": {"id": product.supplier.id, "name": product.supplier.name, "region": product.supplier.region},
        # Shipping abroad (orders/shipping.py): a page can hide or mark what cannot reach the buyer.
        "weight_grams": product.weight_grams,
        "ships_only_to": product.ships_only_to,
        "never_ships_to": product.never_ships_to or [],
    }


def images_public(product: Product) -> list[dict]:
    return [image_public(image) for image in product.images]  # type: ignore[attr-defined]


def main_image_url(product: Product) -> str | None:
    images = product.images  # type: ignore[attr-defined]
    return media_url(images[0].content_hash, "medium") if images else product.image_url
