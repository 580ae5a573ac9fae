"""How domain results reach clients, without the domain knowing the transport.

Handlers call these after a domain operation commits; rooms/ provides the Socket.IO
implementation (across processes through Redis) and installs it at app set-up.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

log = logging.getLogger(__name__)

# One event to send: ("show" or "user", its id, event name, payload).
Event = tuple[str, int, str, dict[str, Any]]


class ShowEvents(Protocol):
    async def to_show(self, show_id: int, event: str, data: dict[str, Any]) -> None:
        """Send to everyone in a show's room (e.g. `stock`, `sale`, `show_status`)."""

    async def to_user(self, user_id: int, event: str, data: dict[str, Any]) -> None:
        """Send to every connection of one signed-in user (e.g. their own `order`)."""


async def send_committed(events: ShowEvents, *calls: Event) -> None:
    """Send events about something already committed. A failure is logged, never
    raised: the order or restock stands, and answering its request with an error would
    only invite a retry of what already happened."""
    for target, ident, name, data in calls:
        try:
            if target == "show":
                await events.to_show(ident, name, data)
            else:
                await events.to_user(ident, name, data)
        except Exception:  # noqa: BLE001 - see above
            log.warning("could not send %s to %s %s", name, target, ident, exc_info=True)


class NoEvents:
    """Used until the rooms are set up, and by domain tests that do not watch events."""

    async def to_show(self, show_id: int, event: str, data: dict[str, Any]) -> None:
        return None

    async def to_user(self, user_id: int, event: str, data: dict[str, Any]) -> None:
        return None


class RecordedEvents:
    """Keeps what was sent, for tests of the domain's event output."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int, str, dict[str, Any]]] = []

    async def to_show(self, show_id: int, event: str, data: dict[str, Any]) -> None:
        self.sent.append(("show", show_id, event, data))

    async def to_user(self, user_id: int, event: str, data: dict[str, Any]) -> None:
        self.sent.append(("user", user_id, event, data))
