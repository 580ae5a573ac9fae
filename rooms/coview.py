"""Co-view rooms: a member opens a private room on a show and invites buyers with a
code. Orders placed from the room credit the member as broker (orders/ reads the
room); here are its creation, lookup and public description."""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from orders.errors import Forbidden, NotFound
from orders.models import CoviewRoom, Role, Show, ShowStatus, User
from orders.shows import get_show
from rooms.errors import CoviewExpired, ShowEnded

CODE = re.compile(r"^[A-Za-z0-9_-]{8,32}$")
OPENERS = (Role.member, Role.admin)


def new_code() -> str:
    # 96 random bits: guessing a live code is not a realistic attack.
    return secrets.token_urlsafe(12)


async def create_room(
    session: AsyncSession, *, show_id: int, owner: User, at: datetime, ttl: int, member_limit: int
) -> CoviewRoom:
    if owner.role not in OPENERS:
        raise Forbidden("only members open co-view rooms")
    show = await get_show(session, show_id)
    if show.status is ShowStatus.ended:
        raise ShowEnded("the show has ended")
    room = CoviewRoom(
        code=new_code(),
        show_id=show.id,
        owner_id=owner.id,
        member_limit=member_limit,
        created_at=at,
        expires_at=at + timedelta(seconds=ttl),
    )
    session.add(room)
    await session.flush()
    return room


async def find_room(session: AsyncSession, code: str, at: datetime) -> CoviewRoom:
    """The room an invite code opens; NotFound for a wrong code, CoviewExpired for an old one."""
    if not isinstance(code, str) or not CODE.match(code):
        raise NotFound("no co-view room with this code")
    room = await session.scalar(select(CoviewRoom).where(CoviewRoom.code == code))
    if room is None:
        raise NotFound("no co-view room with this code")
    if room.expires_at <= at:
        raise CoviewExpired("this invitation has expired")
    return room


async def room_public(session: AsyncSession, room: CoviewRoom, url: str) -> dict[str, Any]:
    show: Show = await get_show(session, room.show_id)
    owner = await session.get(User, room.owner_id)
    return {
        "code": room.code,
        "url": url,
        "show": {"id": show.id, "title": show.title, "status": show.status.value},
        "owner": {"id": owner.id, "name": owner.name} if owner else None,
        "member_limit": room.member_limit,
        "expires_at": room.expires_at.isoformat(),
    }
