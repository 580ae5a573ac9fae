"""Issue 14, item 14: after logout the token still worked for 7 days. Tokens now name a
row of the shared `sessions` table; logout revokes that session and "sign out
everywhere" all of the account's, on every node."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from tests.conftest import bearer, login
from tests.rooms.conftest import BUYER, SHOW, start_server
from web.appkeys import TOKENS

async def test_a_token_is_refused_after_logout(client):
    token = await login(client, BUYER)
    assert (await client.get("/api/me", headers=bearer(token))).status == 200

    out = await client.post("/api/auth/logout", headers=bearer(token))

    assert out.status == 200
    response = await client.get("/api/me", headers=bearer(token))
    assert response.status == 401
    assert (await response.json())["error"] == "unauthorized"


async def test_logout_by_cookie_ends_the_session_the_cookie_named(client):
    token = await login(client, BUYER)  # the client keeps the cookie too
    assert (await client.post("/api/auth/logout")).status == 200
    assert (await client.get("/api/me", headers=bearer(token))).status == 401


async def test_logging_out_one_session_leaves_the_others(client):
    phone, laptop = await login(client, BUYER), await login(client, BUYER)
    await client.post("/api/auth/logout", headers=bearer(phone))
    assert (await client.get("/api/me", headers=bearer(laptop))).status == 200


async def test_sign_out_everywhere_revokes_every_session_of_the_account(client):
    phone, laptop = await login(client, BUYER), await login(client, BUYER)
    someone_else = await login(client, "member@livemall.example")

    out = await client.post("/api/auth/logout-all", headers=bearer(laptop))

    assert out.status == 200 and (await out.json())["revoked"] == 2
    assert (await client.get("/api/me", headers=bearer(phone))).status == 401
    assert (await client.get("/api/me", headers=bearer(laptop))).status == 401
    assert (await client.get("/api/me", headers=bearer(someone_else))).status == 200


async def test_sign_out_everywhere_needs_a_live_session(client):
    response = await client.post("/api/auth/logout-all")
    assert response.status == 401


async def test_a_token_naming_no_session_is_refused(client):
    token = client.app[TOKENS].issue(4)  # signed with the real key, but no session behind it
    response = await client.get("/api/me", headers=bearer(token))
    assert response.status == 401


async def test_a_logout_on_one_node_is_refused_on_another(demo_db, tmp_path):
    """Two nodes on one database: the second believed the session a moment ago, and
    still refuses it within its short recheck once the first logged it out."""
    one = await start_server(demo_db, tmp_path / "one")
    two = await start_server(demo_db, tmp_path / "two")
    try:
        token = await one.token(BUYER)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{two.url}/api/me", headers=bearer(token)) as r:
                assert r.status == 200  # node two has now cached the session as live
            async with http.post(f"{one.url}/api/auth/logout", headers=bearer(token)) as r:
                assert r.status == 200

            async def refused_on_two() -> None:
                while True:
                    async with http.get(f"{two.url}/api/me", headers=bearer(token)) as r:
                        if r.status == 401:
                            return
                    await asyncio.sleep(0.1)

            await asyncio.wait_for(refused_on_two(), timeout=10)
    finally:
        await one.close()
        await two.close()


async def test_a_socket_of_a_logged_out_session_can_no_longer_chat(server):
    token = await server.token(BUYER)
    socket = await server.join(BUYER)
    assert (await socket.call("chat", {"text": "before"}))["ok"]

    async with aiohttp.ClientSession() as http:
        async with http.post(f"{server.url}/api/auth/logout", headers=bearer(token)) as r:
            assert r.status == 200
    reply = await socket.call("chat", {"text": "after"})

    assert reply["ok"] is False and reply["error"] == "unauthorized"


async def test_a_logged_out_token_cannot_join_a_show(server):
    token = await server.token(BUYER)
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{server.url}/api/auth/logout", headers=bearer(token)) as r:
            assert r.status == 200
    refused = await server.viewer().refusal({"show": SHOW, "token": token})
    assert refused["data"]["error"] == "unauthorized"


async def test_sessions_expire_with_their_tokens(client):
    token = await login(client, BUYER)
    codec = client.app[TOKENS]
    user_id, session_id = codec.claims(token)
    late = codec.issue(user_id, now=time.time() - codec.ttl - 5, session_id=session_id)
    assert (await client.get("/api/me", headers=bearer(late))).status == 401
