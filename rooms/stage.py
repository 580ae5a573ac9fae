"""What is on screen in a show: the current segment (and so the committee sales are
credited to), the pinned product, slow mode. Host controls change it; a joining
socket reads it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from orders.catalog import exhibition_price, get_product, images_public, main_image_url
from orders.errors import Invalid, NotFound
from orders.models import Product, Segment, SegmentProduct, Show
from orders.shows import current_segment, get_segment
from rooms.models import Pin

MAX_SLOW_MODE = 3600  # seconds


class NotInLineup(Invalid):
    code = "not_in_lineup"


def segment_event(segment: Segment) -> dict[str, Any]:
    committee = segment.committee
    return {
        "id": segment.id,
        "title": segment.title,
        "committee": {"code": committee.code, "name": committee.name_en, "name_ko": committee.name_ko},
    }


async def product_event(session: AsyncSession, show: Show, product: Product, at: datetime) -> dict[str, Any]:
    """The pinned product as viewers see it: the exhibition price when one is in force."""
    special = await exhibition_price(session, show.exhibition_id, product.id, at)
    return {
        "id": product.id,
        "name": product.name,
        "price": special if special is not None else product.price,
        "list_price": product.price,
        "currency": product.currency,
        "stock": product.stock,
        "kind": product.kind.value,
        "moq": product.moq,
        "description": product.description,
        "images": images_public(product),  # [{id, small, medium, large, width, height}], main first
        "image_url": main_image_url(product),
    }


async def change_segment(session: AsyncSession, show: Show, segment_id: int) -> dict[str, Any]:
    """Make `segment_id` current: orders placed from now on are credited to its committee."""
    segment = await get_segment(session, show, segment_id)
    show.current_segment_id = segment.id
    await session.flush()
    return segment_event(segment)


def _offset_ms(show: Show, at: datetime) -> int | None:
    if show.started_at is None:
        return None
    return max(0, int((at - show.started_at).total_seconds() * 1000))


async def _close_open_pins(session: AsyncSession, show_id: int, at: datetime) -> None:
    await session.execute(
        update(Pin).where(Pin.show_id == show_id, Pin.unpinned_at.is_(None)).values(unpinned_at=at)
    )


async def pin(session: AsyncSession, show: Show, product_id: int, at: datetime) -> dict[str, Any]:
    """Pin a product of the show's line-up (its segments' products); the pin row keeps its
    offset from the show's start for the replay. A product outside the line-up is refused
    (issue 14, item 20): the host extends the line-up on purpose first, with a segment."""
    try:
        product = await get_product(session, product_id)
    except NotFound as exc:
        raise Invalid(exc.message, field="product_id") from None
    in_lineup = await session.scalar(
        select(SegmentProduct.product_id)
        .join(Segment, Segment.id == SegmentProduct.segment_id)
        .where(Segment.show_id == show.id, SegmentProduct.product_id == product.id)
        .limit(1)
    )
    if in_lineup is None:
        raise NotInLineup(f"product {product.id} is not in this show's line-up; add a segment with it first",
                          field="product_id")
    # The show's row locked and read again (PostgreSQL): a segment switch committed by
    # another process before this point is the one this pin is credited to.
    await session.refresh(show, attribute_names=["current_segment_id"], with_for_update=True)
    await _close_open_pins(session, show.id, at)
    show.pinned_product_id = product.id
    session.add(
        Pin(
            show_id=show.id,
            product_id=product.id,
            segment_id=show.current_segment_id,
            pinned_at=at,
            offset_ms=_offset_ms(show, at),
        )
    )
    await session.flush()
    return await product_event(session, show, product, at)


async def unpin(session: AsyncSession, show: Show, at: datetime) -> int | None:
    """Take the pinned product off screen; returns its id (None: nothing was pinned)."""
    product_id = show.pinned_product_id
    await _close_open_pins(session, show.id, at)
    show.pinned_product_id = None
    await session.flush()
    return product_id


async def set_slow_mode(session: AsyncSession, show: Show, seconds: int) -> int:
    if not 0 <= seconds <= MAX_SLOW_MODE:
        raise Invalid(f"slow mode is 0 to {MAX_SLOW_MODE} seconds", field="seconds")
    show.slow_mode = seconds
    await session.flush()
    return seconds


async def pins_of(session: AsyncSession, show_id: int) -> list[dict[str, Any]]:
    """Every pin of a show in order, with offsets: the shoppable replay's timeline."""
    rows = await session.scalars(select(Pin).where(Pin.show_id == show_id).order_by(Pin.id))
    return [
        {"product_id": p.product_id, "segment_id": p.segment_id, "offset_ms": p.offset_ms,
         "pinned_at": p.pinned_at.isoformat(), "unpinned_at": p.unpinned_at.isoformat() if p.unpinned_at else None}
        for p in rows
    ]


async def stage_state(session: AsyncSession, show: Show, at: datetime) -> dict[str, Any]:
    """The part of `state` that describes the stage."""
    segment = current_segment(show)
    pinned = None
    if show.pinned_product_id is not None:
        product = await session.get(Product, show.pinned_product_id)
        if product is not None:
            pinned = await product_event(session, show, product, at)
    return {
        "show": {
            "id": show.id,
            "title": show.title,
            "host": {"id": show.host.id, "name": show.host.name},
            "started_at": show.started_at.isoformat() if show.started_at else None,
        },
        "status": show.status.value,
        "segment": segment_event(segment) if segment else None,
        "pin": pinned,
        "slow_mode": show.slow_mode,
    }
