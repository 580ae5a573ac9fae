"""Co-view rooms: the HTTP API that opens them and the private room over Socket.IO."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import aiohttp
from sqlalchemy import update

from orders.db import Database
from orders.models import CoviewRoom, Show
from tests.rooms.conftest import ADMIN, BUYER, HOST, MEMBER, SHOW, query


async def _post(server, path: str, body, token: str | None = None) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http:
        async with http.post(server.url + path, json=body, headers=headers) as response:
            return response.status, await response.json()


async def _get(server, path: str, email: str = BUYER) -> tuple[int, dict]:
    """GET as a signed-in user (describing a room needs one)."""
    headers = {"Authorization": f"Bearer {await server.token(email)}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(server.url + path, headers=headers) as response:
            return response.status, await response.json()


async def open_room(server, email: str = MEMBER) -> dict:
    status, body = await _post(server, "/api/coview", {"show_id": SHOW}, await server.token(email))
    assert status == 201, body
    return body


async def test_member_opens_a_room_and_gets_an_invite_code_and_url(server):
    room = await open_room(server)
    assert len(room["code"]) >= 16
    assert room["url"] == f"{server.url}/coview/{room['code']}"
    assert room["show"]["id"] == SHOW and room["owner"]["name"] == "Иван Петров"
    assert room["member_limit"] == 50


async def test_invite_url_uses_the_public_url_when_configured(start):
    server = await start(public_url="https://live.example.org/")
    room = await open_room(server)
    assert room["url"] == f"https://live.example.org/coview/{room['code']}"


async def test_only_members_open_rooms(server):
    assert (await _post(server, "/api/coview", {"show_id": SHOW}, await server.token(BUYER)))[0] == 403
    assert (await _post(server, "/api/coview", {"show_id": SHOW}))[0] == 401
    assert (await _post(server, "/api/coview", {"show_id": SHOW}, await server.token(ADMIN)))[0] == 201


async def test_opening_a_room_needs_a_real_show_and_a_valid_body(server):
    token = await server.token(MEMBER)
    status, body = await _post(server, "/api/coview", {"show_id": 999}, token)
    assert status == 404 and body["error"] == "not_found"
    assert (await _post(server, "/api/coview", {"show_id": "1"}, token))[0] == 422
    assert (await _post(server, "/api/coview", {"show_id": 1, "x": 1}, token))[0] == 422


async def test_room_description_by_code(server):
    room = await open_room(server)
    status, body = await _get(server, f"/api/coview/{room['code']}")
    assert status == 200 and body["code"] == room["code"] and body["members"] == 0
    status, body = await _get(server, "/api/coview/not-a-real-code")
    assert status == 404 and body["error"] == "not_found"


async def _expire(server, code: str) -> None:
    database = Database(server.database)
    async with database.transaction() as session:
        await session.execute(
            update(CoviewRoom)
            .where(CoviewRoom.code == code)
            .values(expires_at=datetime.now(timezone.utc) - timedelta(minutes=1))
        )
    await database.close()


async def test_expired_room_is_refused_over_http_and_socketio(server):
    room = await open_room(server)
    await _expire(server, room["code"])

    status, body = await _get(server, f"/api/coview/{room['code']}")
    assert status == 404 and body["error"] == "coview_expired"
    refused = await server.viewer().refusal({"show": SHOW, "token": await server.token(BUYER), "coview": room["code"]})
    assert refused["data"]["error"] == "coview_expired"


async def test_wrong_code_is_refused(server):
    token = await server.token(BUYER)
    refused = await server.viewer().refusal({"show": SHOW, "token": token, "coview": "wrong-code-123"})
    assert refused["data"]["error"] == "not_found"


async def test_anonymous_socket_cannot_join_a_coview_room(server):
    room = await open_room(server)
    refused = await server.viewer().refusal({"show": SHOW, "coview": room["code"]})
    assert refused["data"]["error"] == "unauthorized"


async def test_code_of_another_show_is_refused(server):
    room = await open_room(server)
    database = Database(server.database)
    async with database.transaction() as session:
        other = Show(title="Another show", host_id=2, scheduled_at=datetime.now(timezone.utc))
        session.add(other)
        await session.flush()
        other_id = other.id
    await database.close()
    token = await server.token(BUYER)

    refused = await server.viewer().refusal({"show": other_id, "token": token, "coview": room["code"]})

    assert refused["data"]["error"] == "not_found"
    assert "another show" in refused["data"]["message"]


async def test_coview_chat_reaches_only_the_room_while_show_chat_reaches_everyone(server):
    room = await open_room(server)
    owner = await server.join(MEMBER, coview=room["code"])
    buyer = await server.join(BUYER, coview=room["code"])
    outsider = await server.join(HOST)

    private = await buyer.call("chat", {"text": "should we buy the mask line?", "room": "coview"})
    public = await buyer.call("chat", {"text": "hello everyone"})

    assert (await owner.next("chat", lambda m: m["id"] == private["id"]))["room"] == "coview"
    await outsider.next("chat", lambda m: m["id"] == public["id"])
    await owner.next("chat", lambda m: m["id"] == public["id"])
    assert all(m["id"] != private["id"] for m in outsider.seen("chat"))
    assert buyer.seen("state")[0]["coview"]["owner"]["name"] == "Иван Петров"
    assert owner.seen("state")[0]["coview"]["is_owner"] is True
    rows = await query(server, "SELECT coview_id IS NOT NULL FROM chat_messages WHERE id = :i", i=private["id"])
    assert rows in ([(1,)], [(True,)])


async def test_coview_history_is_seen_only_by_its_members(server):
    room = await open_room(server)
    buyer = await server.join(BUYER, coview=room["code"])
    private = await buyer.call("chat", {"text": "private", "room": "coview"})

    member_again = await server.join(MEMBER, coview=room["code"])
    stranger = await server.join(HOST)

    assert private["id"] in [m["id"] for m in member_again.seen("state")[0]["chat"]]
    assert private["id"] not in [m["id"] for m in stranger.seen("state")[0]["chat"]]


async def test_chat_to_coview_without_a_room_is_invalid(server):
    buyer = await server.join(BUYER)
    reply = await buyer.call("chat", {"text": "hi", "room": "coview"})
    assert reply["ok"] is False and reply["error"] == "invalid"


async def test_question_from_a_coview_room_is_marked_and_reaches_the_room(server):
    room = await open_room(server)
    host = await server.join(HOST)
    owner = await server.join(MEMBER, coview=room["code"])
    buyer = await server.join(BUYER, coview=room["code"])

    ack = await buyer.call("ask", {"text": "MOQ for the filter machine?"})

    relayed = await host.next("question", lambda q: q["id"] == ack["id"])
    assert relayed["via_coview"] is True
    assert (await owner.next("question", lambda q: q["id"] == ack["id"]))["text"] == "MOQ for the filter machine?"


async def test_owner_and_invited_buyer_see_who_is_present(server):
    room = await open_room(server)
    owner = await server.join(MEMBER, coview=room["code"])
    buyer = await server.join(BUYER, coview=room["code"])

    present = await owner.next("coview_members", lambda m: m["count"] == 2)
    assert [m["name"] for m in present["members"]] == ["Иван Петров", "王芳"]
    seen_by_buyer = await buyer.next("coview_members", lambda m: m["count"] == 2)
    assert seen_by_buyer["members"] == present["members"]

    await buyer.close()
    assert await owner.next("coview_members", lambda m: m["count"] == 1)


async def test_a_second_tab_of_a_present_member_gets_the_member_list(server):
    room = await open_room(server)
    await server.join(MEMBER, coview=room["code"])
    buyer = await server.join(BUYER, coview=room["code"])
    await buyer.next("coview_members", lambda m: m["count"] == 2)

    second_tab = await server.join(BUYER, coview=room["code"])  # the list itself does not change

    assert (await second_tab.next("coview_members", lambda m: m["count"] == 2))["count"] == 2


async def test_a_viewer_outside_the_room_is_not_told_who_is_in_it(server):
    room = await open_room(server)
    owner = await server.join(MEMBER, coview=room["code"])
    outsider = await server.join(HOST)

    await owner.next("coview_members", lambda m: m["count"] == 1)

    assert outsider.seen("coview_members") == []


async def test_full_room_refuses_another_member_but_readmits_a_present_one(start):
    server = await start(coview_member_limit=2)
    room = await open_room(server)
    await server.join(MEMBER, coview=room["code"])
    await server.join(BUYER, coview=room["code"])

    refused = await server.viewer().refusal({"show": SHOW, "token": await server.token(HOST), "coview": room["code"]})

    assert refused["data"]["error"] == "coview_full"
    assert (await server.join(BUYER, coview=room["code"])).seen("state")  # a second tab is fine
