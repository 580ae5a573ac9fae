"""Host controls and Q&A over real Socket.IO: only the show's host or an admin may use
them; each change is stored and reaches the room."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import update

from orders.db import Database
from orders.models import Show
from tests.rooms.conftest import ADMIN, BUYER, HOST, MEMBER, SHOW, load_demo_into, query

CONTROLS = [
    ("pin", {"product_id": 1}),
    ("unpin", {}),
    ("segment", {"segment_id": 1}),
    ("answer", {"question_id": 1}),
    ("delete_chat", {"id": 1}),
    ("mute", {"user_id": 4, "seconds": 60}),
    ("slow_mode", {"seconds": 10}),
]


@pytest.mark.parametrize("event,data", CONTROLS, ids=[c[0] for c in CONTROLS])
async def test_viewer_using_a_host_control_is_forbidden(server, event, data):
    member = await server.join(MEMBER)
    reply = await member.call(event, data)
    assert reply["ok"] is False and reply["error"] == "forbidden"


async def test_anonymous_socket_using_a_host_control_is_forbidden(server):
    anonymous = await server.join(None)
    assert (await anonymous.call("pin", {"product_id": 1}))["error"] == "forbidden"


async def test_segment_change_is_stored_and_shows_the_committee(server):
    host = await server.join(HOST)
    viewer = await server.join(BUYER)

    assert (await host.call("segment", {"segment_id": 3}))["ok"]

    segment = await viewer.next("segment")
    assert segment["id"] == 3 and segment["title"] == "Masks and mask lines"
    assert segment["committee"]["code"] == "medical" and segment["committee"]["name"]
    assert await query(server, "SELECT current_segment_id FROM shows WHERE id = :s", s=SHOW) == [(3,)]


async def test_segment_of_another_show_is_not_found(server):
    host = await server.join(HOST)
    reply = await host.call("segment", {"segment_id": 999})
    assert reply["ok"] is False and reply["error"] == "not_found"


async def test_pin_sends_the_product_at_its_exhibition_price(server):
    host = await server.join(HOST)
    viewer = await server.join(BUYER)

    assert (await host.call("pin", {"product_id": 1}))["ok"]

    pinned = (await viewer.next("pin"))["product"]
    # Jeju green tea lists at 15.00 USD; the demo exhibition sells it at 12.00.
    assert pinned == {"id": 1, "name": "Jeju Organic Green Tea 100g", "price": 1200, "list_price": 1500,
                      "currency": "USD", "stock": 120, "kind": "retail", "moq": 1,
                      "description": "First-flush leaves from Jeju island.", "images": [], "image_url": None}
    assert await query(server, "SELECT pinned_product_id FROM shows WHERE id = :s", s=SHOW) == [(1,)]


async def test_pin_of_a_live_show_stores_its_offset_from_the_start(server):
    database = Database(server.database)
    async with database.transaction() as session:
        await session.execute(
            update(Show)
            .where(Show.id == SHOW)
            .values(status="live", started_at=datetime.now(timezone.utc) - timedelta(seconds=90), current_segment_id=1)
        )
    await database.close()
    host = await server.join(HOST)

    assert (await host.call("pin", {"product_id": 2}))["ok"]

    [(offset, segment_id, unpinned)] = await query(server, "SELECT offset_ms, segment_id, unpinned_at FROM pins")
    assert 90_000 <= offset < 100_000 and segment_id == 1 and unpinned is None


async def test_pin_before_the_show_starts_has_no_offset(server):
    host = await server.join(HOST)
    assert (await host.call("pin", {"product_id": 2}))["ok"]
    assert await query(server, "SELECT offset_ms FROM pins") == [(None,)]


async def test_pinning_another_product_closes_the_previous_pin(server):
    host = await server.join(HOST)
    await host.call("pin", {"product_id": 1})
    await host.call("pin", {"product_id": 2})
    rows = await query(server, "SELECT product_id, unpinned_at IS NOT NULL FROM pins ORDER BY id")
    assert rows == [(1, 1), (2, 0)] or rows == [(1, True), (2, False)]


async def test_unpin_clears_the_pin_and_tells_the_room(server):
    host = await server.join(HOST)
    viewer = await server.join(BUYER)
    await host.call("pin", {"product_id": 1})

    reply = await host.call("unpin", {})

    assert reply == {"ok": True, "product_id": 1}
    assert await viewer.next("unpin") == {"product_id": 1}
    assert await query(server, "SELECT pinned_product_id FROM shows WHERE id = :s", s=SHOW) == [(None,)]


async def test_unpin_with_nothing_pinned_is_harmless(server):
    host = await server.join(HOST)
    assert await host.call("unpin", {}) == {"ok": True, "product_id": None}


async def test_pin_of_an_unknown_product_is_invalid(server):
    host = await server.join(HOST)
    reply = await host.call("pin", {"product_id": 12345})
    assert reply["ok"] is False and reply["error"] == "invalid"


async def test_host_deletes_a_message_for_everyone_and_from_history(server):
    host = await server.join(HOST)
    buyer = await server.join(BUYER)
    ack = await buyer.call("chat", {"text": "spam link"})

    assert (await host.call("delete_chat", {"id": ack["id"]}))["ok"]

    assert await buyer.next("chat_deleted") == {"id": ack["id"]}
    later = await server.join(MEMBER)
    assert all(m["id"] != ack["id"] for m in later.seen("state")[0]["chat"])


async def test_deleting_an_unknown_message_is_not_found(server):
    host = await server.join(HOST)
    assert (await host.call("delete_chat", {"id": 424242}))["error"] == "not_found"


async def test_muted_user_cannot_chat_or_ask_until_the_mute_ends(server):
    host = await server.join(HOST)
    buyer = await server.join(BUYER)

    assert (await host.call("mute", {"user_id": 4, "seconds": 60}))["ok"]

    assert await buyer.next("muted") == {"show": SHOW, "seconds": 60}
    reply = await buyer.call("chat", {"text": "let me talk"})
    assert reply["ok"] is False and reply["error"] == "muted" and 50 <= reply["retry_after"] <= 60
    assert (await buyer.call("ask", {"text": "why?"}))["error"] == "muted"
    other = await server.join(MEMBER)
    assert (await other.call("chat", {"text": "others are unaffected"}))["ok"]


async def test_mute_refuses_bad_durations_and_the_host(server):
    host = await server.join(HOST)
    assert (await host.call("mute", {"user_id": 4, "seconds": 0}))["error"] == "invalid"
    assert (await host.call("mute", {"user_id": 4, "seconds": "60"}))["error"] == "invalid"
    assert (await host.call("mute", {"user_id": 2, "seconds": 60}))["error"] == "invalid"
    assert (await host.call("mute", {"user_id": 999, "seconds": 60}))["error"] == "not_found"


async def test_slow_mode_limits_viewers_but_not_the_host(server):
    host = await server.join(HOST)
    buyer = await server.join(BUYER)

    assert (await host.call("slow_mode", {"seconds": 30}))["ok"]

    assert await buyer.next("slow_mode") == {"seconds": 30}
    assert (await buyer.call("chat", {"text": "first"}))["ok"]
    reply = await buyer.call("chat", {"text": "second"})
    assert reply["error"] == "slow_mode" and 25 <= reply["retry_after"] <= 30
    assert (await host.call("chat", {"text": "host 1"}))["ok"] and (await host.call("chat", {"text": "host 2"}))["ok"]
    assert await query(server, "SELECT slow_mode FROM shows WHERE id = :s", s=SHOW) == [(30,)]
    assert (await server.join(MEMBER)).seen("state")[0]["slow_mode"] == 30


async def test_slow_mode_out_of_range_is_invalid(server):
    host = await server.join(HOST)
    assert (await host.call("slow_mode", {"seconds": -1}))["error"] == "invalid"
    assert (await host.call("slow_mode", {"seconds": 100_000}))["error"] == "invalid"


async def test_questions_reach_the_host_in_order_and_the_asker_sees_the_answer(server):
    host = await server.join(HOST)
    buyer = await server.join(BUYER)
    member = await server.join(MEMBER)

    first = await buyer.call("ask", {"text": "Is the tea organic?"})
    second = await member.call("ask", {"text": "Shipping to Moscow?"})

    asked = [await host.next("question", lambda q: q["id"] == first["id"]),
             await host.next("question", lambda q: q["id"] == second["id"])]
    assert [q["text"] for q in asked] == ["Is the tea organic?", "Shipping to Moscow?"]
    assert asked[0]["via_coview"] is False and asked[0]["answered"] is False
    assert member.seen("question") == [asked[1]]  # viewers see only their own questions

    assert (await host.call("answer", {"question_id": first["id"]}))["ok"]

    answered = await buyer.next("question", lambda q: q["answered"])
    assert answered["id"] == first["id"]
    late_host = await server.join(ADMIN)
    assert [(q["id"], q["answered"]) for q in late_host.seen("state")[0]["questions"]] == [
        (first["id"], True), (second["id"], False)]
    assert [q["id"] for q in (await server.join(BUYER)).seen("state")[0]["questions"]] == [first["id"]]


async def test_answering_an_unknown_question_is_not_found(server):
    host = await server.join(HOST)
    assert (await host.call("answer", {"question_id": 77}))["error"] == "not_found"


@pytest.fixture(params=["sqlite", "postgresql"])
def postgres_or_none(request) -> str | None:
    """None (the demo SQLite database) or a fresh PostgreSQL one; resolved here, outside
    the test's event loop, where the PostgreSQL fixtures can run."""
    return None if request.param == "sqlite" else request.getfixturevalue("postgres_url")


async def test_a_pin_sent_right_after_a_segment_switch_is_stored_under_the_new_segment(start, postgres_or_none):
    # The studio sends `segment` and then `pin` without waiting for the first ack; the
    # server ran the two handlers at once and the pin could read the show before the
    # switch committed, crediting the previous committee (issue 15, item 8).
    if postgres_or_none is not None:
        await load_demo_into(postgres_or_none)
    server = await start(postgres_or_none)
    host = await server.join(HOST)
    loop = asyncio.get_running_loop()
    acks = []

    def ack() -> Callable[[Any], None]:
        future = loop.create_future()
        acks.append(future)
        return future.set_result

    rounds = [2, 3, 1, 2, 3, 1, 2, 3]
    for segment_id in rounds:
        await host.client.emit("segment", {"segment_id": segment_id}, callback=ack())
        await host.client.emit("pin", {"product_id": 1}, callback=ack())
    replies = await asyncio.wait_for(asyncio.gather(*acks), 10)

    assert all(reply["ok"] for reply in replies)
    assert [r[0] for r in await query(server, "SELECT segment_id FROM pins ORDER BY id")] == rounds
