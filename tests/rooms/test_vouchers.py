"""In-stream vouchers over real Socket.IO clients: the host pins one and the room sees
it, a signed-in viewer claims it with one tap (then finds it in their wallet), and a
viewer pinning or an anonymous viewer claiming is refused."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import aiohttp

from tests.rooms.conftest import BUYER, HOST, MEMBER, query


async def make_voucher(server, **change) -> dict:
    now = datetime.now(timezone.utc)
    body = {"kind": "amount", "amount": 300, "currency": "USD", "total_limit": 50, "show_id": 1,
            "starts_at": (now - timedelta(minutes=5)).isoformat(), "ends_at": (now + timedelta(hours=2)).isoformat()}
    body.update(change)
    token = await server.token(HOST)
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{server.url}/api/vouchers", json=body,
                             headers={"Authorization": f"Bearer {token}"}) as response:
            assert response.status == 201, await response.text()
            return await response.json()


async def test_the_host_pins_a_voucher_and_the_room_sees_it(server):
    voucher = await make_voucher(server)
    host = await server.join(HOST)
    watcher = await server.join(None)

    reply = await host.call("voucher_pin", {"voucher_id": voucher["id"]})

    assert reply["ok"], reply
    pinned = await watcher.next("voucher_pin")
    assert (pinned["voucher"]["id"], pinned["voucher"]["amount"], pinned["voucher"]["currency"]) == (
        voucher["id"], 300, "USD")
    assert (await watcher.call("voucher_state", {}))["voucher"]["id"] == voucher["id"]


async def test_a_signed_in_viewer_claims_the_pinned_voucher_with_one_tap(server):
    voucher = await make_voucher(server)
    host = await server.join(HOST)
    buyer = await server.join(BUYER)
    assert (await host.call("voucher_pin", {"voucher_id": voucher["id"]}))["ok"]

    reply = await buyer.call("voucher_claim", {"voucher_id": voucher["id"]})
    again = await buyer.call("voucher_claim", {"voucher_id": voucher["id"]})

    assert (reply["ok"], reply["claimed"], again["ok"]) == (True, True, True)
    assert await query(server, "SELECT user_id FROM voucher_claims") == [(4,)]
    token = await server.token(BUYER)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/api/me/vouchers", headers={"Authorization": f"Bearer {token}"}) as r:
            assert [v["id"] for v in await r.json()] == [voucher["id"]]


async def test_a_viewer_who_is_not_the_host_cannot_pin(server):
    voucher = await make_voucher(server)
    member = await server.join(MEMBER)

    reply = await member.call("voucher_pin", {"voucher_id": voucher["id"]})

    assert (reply["ok"], reply["error"]) == (False, "forbidden")
    assert await query(server, "SELECT count(*) FROM voucher_pins") == [(0,)]


async def test_an_anonymous_viewer_cannot_claim(server):
    voucher = await make_voucher(server)
    host = await server.join(HOST)
    anonymous = await server.join(None)
    assert (await host.call("voucher_pin", {"voucher_id": voucher["id"]}))["ok"]

    reply = await anonymous.call("voucher_claim", {"voucher_id": voucher["id"]})

    assert (reply["ok"], reply["error"]) == (False, "unauthorized")
    assert await query(server, "SELECT count(*) FROM voucher_claims") == [(0,)]


async def test_a_voucher_not_pinned_here_cannot_be_claimed(server):
    voucher = await make_voucher(server)
    buyer = await server.join(BUYER)

    reply = await buyer.call("voucher_claim", {"voucher_id": voucher["id"]})

    assert (reply["ok"], reply["error"]) == (False, "voucher_not_pinned")
