"""Which show, live segment, committee, co-view room and broker a sale belongs to.

Orders and quotes carry the same attribution, taken when the buyer asks: the show's
current segment (set by the host in the show room) and that segment's committee; the
co-view room of an invite code and its owner, the member who brokered the sale.
Resolved for a whole batch of requests in one or two queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from orders.errors import Invalid
from orders.models import Committee, CoviewRoom, Segment, Show


class InvalidCoview(Invalid):
    code = "invalid_coview"


class UnknownShow(Invalid):
    code = "unknown_show"


@dataclass(frozen=True)
class Ask:
    """Who asks, from which show and co-view code (both optional)."""

    buyer_id: int
    show_id: int | None
    coview: str | None


@dataclass(frozen=True)
class Attribution:
    show_id: int | None = None
    exhibition_id: int | None = None
    segment_id: int | None = None
    committee_id: int | None = None
    committee_code: str | None = None
    coview_id: int | None = None
    broker_id: int | None = None

    def columns(self) -> dict[str, int | None]:
        """The attribution columns shared by orders and quotes."""
        return {
            "show_id": self.show_id,
            "segment_id": self.segment_id,
            "committee_id": self.committee_id,
            "coview_id": self.coview_id,
            "broker_id": self.broker_id,
        }


async def attribute(session: AsyncSession, asks: Sequence[Ask], at: datetime) -> list[Attribution | Invalid]:
    """One attribution (or the reason it is refused) per ask, in order."""
    codes = {a.coview for a in asks if a.coview}
    rooms: dict[str, CoviewRoom] = {}
    if codes:
        rooms = {r.code: r for r in await session.scalars(select(CoviewRoom).where(CoviewRoom.code.in_(codes)))}
    show_ids = {a.show_id for a in asks if a.show_id is not None} | {r.show_id for r in rooms.values()}
    # Each show with its live segment's committee, in one query (an order waits on it).
    shows: dict[int, tuple[int | None, int | None, int | None, str | None]] = {}
    if show_ids:
        rows = await session.execute(
            select(Show.id, Show.exhibition_id, Show.current_segment_id, Committee.id, Committee.code)
            .outerjoin(Segment, Segment.id == Show.current_segment_id)
            .outerjoin(Committee, Committee.id == Segment.committee_id)
            .where(Show.id.in_(show_ids))
        )
        shows = {sid: (exhibition, segment, committee_id, code)
                 for sid, exhibition, segment, committee_id, code in rows.all()}

    out: list[Attribution | Invalid] = []
    for ask in asks:
        show_id = ask.show_id
        coview_id = broker_id = None
        if ask.coview:
            room = rooms.get(ask.coview)
            if room is None:
                out.append(InvalidCoview("no co-view room with this code", field="coview"))
                continue
            if room.expires_at <= at:
                out.append(InvalidCoview("this co-view invitation has expired", field="coview"))
                continue
            if show_id is not None and show_id != room.show_id:
                out.append(InvalidCoview("this co-view code belongs to another show", field="coview"))
                continue
            show_id = room.show_id
            coview_id = room.id
            # A member buying in their own room earns no commission on it.
            broker_id = room.owner_id if room.owner_id != ask.buyer_id else None
        if show_id is None:
            out.append(Attribution())
            continue
        if show_id not in shows:
            out.append(UnknownShow(f"no show {show_id}", field="show_id"))
            continue
        exhibition_id, segment_id, committee_id, committee_code = shows[show_id]
        out.append(
            Attribution(
                show_id=show_id,
                exhibition_id=exhibition_id,
                segment_id=segment_id,
                committee_id=committee_id,
                committee_code=committee_code,
                coview_id=coview_id,
                broker_id=broker_id,
            )
        )
    return out
