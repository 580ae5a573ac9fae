"""Which show, live segment, committee, co-view room and broker a sale belongs to.

Orders and quotes carry the same attribution, taken when the buyer asks: the show's
current segment (set by the host in the show room) and that segment's committee; the
co-view room of an invite code and its owner, the member who brokered the sale.
Resolved for a whole batch of requests in a few queries.

A sale is credited only to a show its buyer is watching or watched (issue 14, item 20:
a buyer credited orders to a show they never joined, skewing its report and a broker's
commission). "Watched" is the audience ledger (`show_viewers`, written by the rooms
about a second after a join, on any node); "watching" is an optional `Audience` port
the web layer wires to the rooms' presence, so a buyer who joined a moment ago is not
refused while the ledger catches up. The port is asked only about buyers the ledger
does not know.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from orders.errors import Invalid
from orders.models import Committee, CoviewRoom, Segment, Show, ShowViewer


class InvalidCoview(Invalid):
    code = "invalid_coview"


class UnknownShow(Invalid):
    code = "unknown_show"


class NotWatching(Invalid):
    code = "not_watching"


class Audience(Protocol):
    async def watching(self, show_id: int, user_ids: set[int]) -> set[int]:
        """Those of `user_ids` watching `show_id` right now."""


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


async def attribute(session: AsyncSession, asks: Sequence[Ask], at: datetime,
                    audience: Audience | None = None) -> list[Attribution | Invalid]:
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

    # Who asks to be credited to a show they are not known to watch or have watched.
    wanted: set[tuple[int, int]] = set()
    for a in asks:
        room = rooms.get(a.coview) if a.coview else None
        show = room.show_id if room is not None else a.show_id
        if show is not None and show in shows:
            wanted.add((show, a.buyer_id))
    viewers: set[tuple[int, int]] = set()
    if wanted:
        # By (show_id, viewer_key), the ledger's unique index: a signed-in viewer's key is
        # "u<user id>" (rooms/server.py), so a batch costs a few index probes however
        # large the audience.
        rows = await session.execute(
            select(ShowViewer.show_id, ShowViewer.user_id).where(
                ShowViewer.show_id.in_({s for s, _ in wanted}),
                ShowViewer.viewer_key.in_({f"u{b}" for _, b in wanted})))
        viewers = {(s, u) for s, u in rows.all() if u is not None}
        if audience is not None:
            missing: dict[int, set[int]] = {}
            for show, buyer in wanted - viewers:
                missing.setdefault(show, set()).add(buyer)
            for show, buyers in missing.items():
                viewers |= {(show, b) for b in await audience.watching(show, buyers)}

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
        if (show_id, ask.buyer_id) not in viewers:
            out.append(NotWatching(f"a sale is credited only to a show you are watching or watched; join show "
                                   f"{show_id} first, or buy without show_id and coview",
                                   field="coview" if ask.coview else "show_id"))
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
