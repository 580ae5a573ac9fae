"""The broadcast schedule: shows, their segments and status changes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from orders import notifications
from orders.catalog import committee_by_code, committee_public
from orders.errors import Forbidden, Invalid, NotFound
from orders.models import (ON_AIR, Exhibition, Product, RecordingPart, Role, Segment, SegmentProduct, Show,
                           ShowStatus, User)

MAX_SEGMENTS = 50
MAX_PRODUCTS_PER_SEGMENT = 100


@dataclass(frozen=True)
class SegmentPlan:
    title: str
    committee: str
    product_ids: list[int] = field(default_factory=list)


def holds_host_role(role: Role, user_id: int, host_id: int) -> bool:
    """An admin, or the show's host *who is still a host*: `shows.host_id` alone would
    leave a demoted host their powers (issue 14, item 8)."""
    return role is Role.admin or (role is Role.host and user_id == host_id)


async def hosts_now(session: AsyncSession, user_id: int, show_id: int) -> bool:
    """Whether the user hosts the show at this moment: the account's current role and the
    show's current host, in one read (for open sockets, whose user was read at connect)."""
    host_id = select(Show.host_id).where(Show.id == show_id).scalar_subquery()
    row = (await session.execute(select(User.role, host_id).where(User.id == user_id))).first()
    return row is not None and holds_host_role(row[0], user_id, row[1])


def can_host(user: User | None, show: Show) -> bool:
    """Only the show's host or an admin may publish, pin, moderate or change segments.
    `user` must be read for this request (its role is the account's current one)."""
    return user is not None and holds_host_role(user.role, user.id, show.host_id)


def require_host(user: User | None, show: Show) -> None:
    if not can_host(user, show):
        raise Forbidden("only the show's host may do this")


async def list_shows(session: AsyncSession) -> list[Show]:
    return list(await session.scalars(select(Show).order_by(Show.scheduled_at, Show.id)))


async def get_show(session: AsyncSession, show_id: int) -> Show:
    show = await session.get(Show, show_id)
    if show is None:
        raise NotFound(f"no show {show_id}")
    return show


async def get_segment(session: AsyncSession, show: Show, segment_id: int) -> Segment:
    segment = await session.get(Segment, segment_id)
    if segment is None or segment.show_id != show.id:
        raise NotFound(f"no segment {segment_id} in show {show.id}")
    return segment


async def create_show(
    session: AsyncSession,
    *,
    creator: User,
    title: str,
    scheduled_at: datetime,
    segments: list[SegmentPlan],
    exhibition_id: int | None = None,
    host_id: int | None = None,
) -> Show:
    if creator.role is Role.host:
        if host_id not in (None, creator.id):
            raise Forbidden("a host can only schedule their own shows")
        host_id = creator.id
    elif creator.role is Role.admin:
        host_id = host_id or creator.id
        host = await session.get(User, host_id)
        if host is None or host.role not in (Role.host, Role.admin):
            raise Invalid("host_id must name a host", field="host_id")
    else:
        raise Forbidden("only hosts and admins schedule shows")
    if exhibition_id is not None and await session.get(Exhibition, exhibition_id) is None:
        raise Invalid(f"no exhibition {exhibition_id}", field="exhibition_id")
    if len(segments) > MAX_SEGMENTS:
        raise Invalid(f"at most {MAX_SEGMENTS} segments", field="segments")
    show = Show(title=title, host_id=host_id, scheduled_at=scheduled_at, exhibition_id=exhibition_id)
    session.add(show)
    await session.flush()
    for plan in segments:
        await add_segment(session, show, plan, refresh=False)
    await session.refresh(show, ["segments", "host"])
    return show


async def add_segment(session: AsyncSession, show: Show, plan: SegmentPlan, *, refresh: bool = True) -> Segment:
    try:
        committee = await committee_by_code(session, plan.committee)
    except NotFound as exc:
        raise Invalid(exc.message, field="committee") from None
    if len(plan.product_ids) > MAX_PRODUCTS_PER_SEGMENT:
        raise Invalid(f"at most {MAX_PRODUCTS_PER_SEGMENT} products a segment", field="product_ids")
    if len(set(plan.product_ids)) != len(plan.product_ids):
        raise Invalid("a product appears twice in the line-up", field="product_ids")
    if plan.product_ids:
        found = set(await session.scalars(select(Product.id).where(Product.id.in_(plan.product_ids))))
        missing = [pid for pid in plan.product_ids if pid not in found]
        if missing:
            raise Invalid(f"unknown products {missing}", field="product_ids")
    position = 1 + max((s.position for s in await _segments(session, show.id)), default=0)
    segment = Segment(show_id=show.id, position=position, title=plan.title, committee_id=committee.id)
    session.add(segment)
    await session.flush()
    for index, product_id in enumerate(plan.product_ids):
        session.add(SegmentProduct(segment_id=segment.id, product_id=product_id, position=index))
    await session.flush()
    if refresh:
        await session.refresh(show, ["segments"])
    await session.refresh(segment, ["products", "committee"])
    return segment


async def _segments(session: AsyncSession, show_id: int) -> list[Segment]:
    return list(await session.scalars(select(Segment).where(Segment.show_id == show_id)))


async def mark_live(session: AsyncSession, show_id: int, started_at: datetime, recording_path: str | None) -> Show:
    """The show is published. One still on air (its node died or restarted and the host
    published again) keeps its start, so the replay's pin times stay right; its new
    recording is another part."""
    show = await get_show(session, show_id)
    if show.status not in ON_AIR or show.started_at is None:
        show.started_at = started_at
        show.recording_path = recording_path
    show.status = ShowStatus.live
    show.ended_at = None
    if recording_path is not None:
        await add_recording_part(session, show_id, recording_path, started_at)
    if show.current_segment_id is None and show.segments:
        show.current_segment_id = show.segments[0].id
    await notifications.show_live(session, show_id, started_at)  # "Remind me": one mail per reminder
    return show


async def add_recording_part(session: AsyncSession, show_id: int, path: str, started_at: datetime) -> None:
    session.add(RecordingPart(show_id=show_id, path=path, started_at=started_at))


async def recording_parts(session: AsyncSession, show_id: int) -> list[tuple[str, float]]:
    """The show's recording parts: (path, seconds from the show's start), in order."""
    show = await get_show(session, show_id)
    rows = await session.scalars(
        select(RecordingPart).where(RecordingPart.show_id == show_id).order_by(RecordingPart.started_at)
    )
    origin = show.started_at
    return [(row.path, (row.started_at - origin).total_seconds() if origin else 0.0) for row in rows]


async def live_show_ids(session: AsyncSession) -> list[int]:
    """Shows on air: live, or waiting for their publisher to reconnect."""
    return list(await session.scalars(select(Show.id).where(Show.status.in_(ON_AIR))))


async def mark_reconnecting(session: AsyncSession, show_id: int) -> Show:
    show = await get_show(session, show_id)
    if show.status is ShowStatus.live:
        show.status = ShowStatus.reconnecting
    return show


async def mark_resumed(session: AsyncSession, show_id: int) -> Show:
    show = await get_show(session, show_id)
    if show.status is ShowStatus.reconnecting:
        show.status = ShowStatus.live
    return show


async def mark_ended(
    session: AsyncSession, show_id: int, ended_at: datetime, recording_path: str | None = None
) -> Show:
    """The show is over. ``recording_path`` is what the relay finished: None when
    nothing could be recorded, so no replay is advertised for a file that is not there."""
    show = await get_show(session, show_id)
    show.status = ShowStatus.ended
    show.ended_at = ended_at
    show.pinned_product_id = None
    show.recording_path = recording_path
    return show


def current_segment(show: Show) -> Segment | None:
    return next((s for s in show.segments if s.id == show.current_segment_id), None)


def segment_public(segment: Segment) -> dict:
    return {
        "id": segment.id,
        "title": segment.title,
        "position": segment.position,
        "committee": {**committee_public(segment.committee), "name": segment.committee.name_en},
        "product_ids": [p.product_id for p in segment.products],
    }


def show_public(show: Show) -> dict:
    return {
        "id": show.id,
        "title": show.title,
        "status": show.status.value,
        "host": {"id": show.host.id, "name": show.host.name},
        "scheduled_at": show.scheduled_at.isoformat(),
        "started_at": show.started_at.isoformat() if show.started_at else None,
        "ended_at": show.ended_at.isoformat() if show.ended_at else None,
        "exhibition_id": show.exhibition_id,
        "current_segment_id": show.current_segment_id,
        "segments": [segment_public(s) for s in show.segments],
    }
