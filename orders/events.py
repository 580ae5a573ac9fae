"""How domain results reach clients, without the domain knowing the transport.

Handlers call these after a domain operation commits; rooms/ provides the Socket.IO
implementation (across processes through Redis) and installs it at app set-up.
"""

from __future__ import annotations

from typing import Any, Protocol


class ShowEvents(Protocol):
    async def to_show(self, show_id: int, event: str, data: dict[str, Any]) -> None:
        """Send to everyone in a show's room (e.g. `stock`, `sale`, `show_status`)."""

    async def to_user(self, user_id: int, event: str, data: dict[str, Any]) -> None:
        """Send to every connection of one signed-in user (e.g. their own `order`)."""


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
