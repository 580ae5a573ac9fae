"""Events about committed changes: a failing delivery never undoes or fails the change."""

from __future__ import annotations

import logging

from orders.events import RecordedEvents, send_committed


class DownForShowOne(RecordedEvents):
    """A sink whose show 1 cannot be reached (its room's transport is failing)."""

    async def to_show(self, show_id: int, event: str, data: dict) -> None:
        if show_id == 1:
            raise ConnectionError("room bus down")
        await super().to_show(show_id, event, data)


async def test_an_event_that_cannot_be_sent_is_logged_and_the_rest_still_go_out(caplog):
    events = DownForShowOne()
    caplog.set_level(logging.WARNING, logger="orders.events")
    await send_committed(
        events,
        ("show", 1, "stock", {"product_id": 7, "stock": 3}),
        ("show", 2, "stock", {"product_id": 7, "stock": 3}),
        ("user", 42, "order", {"id": 9}),
    )
    assert events.sent == [("show", 2, "stock", {"product_id": 7, "stock": 3}), ("user", 42, "order", {"id": 9})]
    assert [r.getMessage() for r in caplog.records] == ["could not send stock to show 1"]
