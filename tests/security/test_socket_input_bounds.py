"""Socket.IO: ids out of range are `invalid` (a connect_error with data, or an ack), never
a broken connection or `internal`; a host's powers stop at their own shows."""

from __future__ import annotations

import pytest

from orders import accounts
from orders.db import Database
from orders.models import Role
from tests.rooms.conftest import HOST, PASSWORD

HUGE = 2**70


@pytest.mark.parametrize("auth", [{"show": HUGE}, {"show": 1, "last_id": HUGE}], ids=["show", "last_id"])
async def test_connecting_with_a_huge_id_is_refused_as_invalid(server, auth):
    refused = await server.viewer().refusal(auth)
    assert refused["data"]["error"] == "invalid"


@pytest.mark.parametrize("event,data", [
    ("pin", {"product_id": HUGE}),
    ("segment", {"segment_id": HUGE}),
    ("answer", {"question_id": HUGE}),
    ("delete_chat", {"id": HUGE}),
    ("mute", {"user_id": HUGE, "seconds": 60}),
], ids=lambda v: v if isinstance(v, str) else "")
async def test_a_host_control_with_a_huge_id_is_invalid(server, event, data):
    host = await server.join(HOST)
    reply = await host.call(event, data)
    assert reply["ok"] is False and reply["error"] == "invalid"


async def _another_host(server) -> str:
    database = Database(server.database)
    async with database.transaction() as session:
        await accounts.create_user(session, email="host2@livemall.example", password=PASSWORD,
                                   name="Other host", role=Role.host, country="KR")
    await database.close()
    return "host2@livemall.example"


@pytest.mark.parametrize("event,data", [
    ("pin", {"product_id": 1}), ("unpin", {}), ("segment", {"segment_id": 2}),
    ("slow_mode", {"seconds": 30}), ("mute", {"user_id": 4, "seconds": 60}),
], ids=lambda v: v if isinstance(v, str) else "")
async def test_the_host_of_another_show_cannot_control_this_one(server, event, data):
    other = await server.join(await _another_host(server))
    reply = await other.call(event, data)
    assert reply == {"ok": False, "error": "forbidden", "message": reply["message"]}
