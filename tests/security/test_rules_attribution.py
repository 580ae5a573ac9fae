"""Issue 14, item 20: a buyer could credit an order to a show they never joined (its
report, and through a co-view code a member's commission), and a host could pin a
product outside the show's line-up. Sales are credited only to a show the buyer is
watching or watched; pins come only from the line-up."""

from __future__ import annotations

import aiohttp

from rooms.server import ROOMS
from tests.rooms.conftest import BUYER, HOST, MEMBER, SHOW, Server, query

ANCHOVY = 3  # a demo product in no segment of show 1
TEA = 1  # in show 1's food segment


async def order(server: Server, key: str, **body) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{server.url}/api/orders", json={"product_id": TEA, "quantity": 1, **body},
                             headers={"Authorization": f"Bearer {await server.token(BUYER)}",
                                      "Idempotency-Key": key}) as response:
            return response.status, await response.json()


async def coview_code(server: Server) -> str:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{server.url}/api/coview", json={"show_id": SHOW},
                             headers={"Authorization": f"Bearer {await server.token(MEMBER)}"}) as response:
            assert response.status == 201, await response.text()
            return (await response.json())["code"]


async def test_an_order_credited_to_a_show_the_buyer_never_joined_is_422(server):
    status, body = await order(server, "never-joined", show_id=SHOW)

    assert status == 422 and body["error"] == "not_watching" and body["field"] == "show_id"
    assert await query(server, "SELECT count(*) FROM orders") == [(0,)]


async def test_a_coview_code_does_not_credit_a_broker_for_a_buyer_who_never_joined(server):
    code = await coview_code(server)

    status, body = await order(server, "borrowed-code", coview=code)

    assert status == 422 and body["error"] == "not_watching" and body["field"] == "coview"
    assert await query(server, "SELECT count(*) FROM broker_credits") == [(0,)]


async def test_a_quote_credited_to_a_show_the_buyer_never_joined_is_422(server):
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{server.url}/api/quotes", json={
            "product_id": 8, "quantity": 1, "destination_country": "KR", "incoterm": "EXW", "show_id": SHOW},
                headers={"Authorization": f"Bearer {await server.token(BUYER)}"}) as response:
            assert response.status == 422
            assert (await response.json())["error"] == "not_watching"


async def test_a_buyer_watching_the_show_is_credited_at_once(server):
    await server.join(BUYER)  # no wait for the audience ledger: the node knows its sockets

    status, body = await order(server, "watching", show_id=SHOW)

    assert status == 201, body
    assert body["show_id"] == SHOW


async def test_a_buyer_who_watched_earlier_is_still_credited(server):
    viewer = await server.join(BUYER)
    await server.app[ROOMS].presence_tick()  # flushes the audience ledger now
    await viewer.close()

    status, body = await order(server, "watched-earlier", show_id=SHOW)

    assert status == 201, body


async def test_an_order_without_a_show_needs_no_watching(server):
    status, body = await order(server, "no-show")
    assert status == 201 and body["show_id"] is None


async def test_a_host_cannot_pin_a_product_outside_the_line_up(server):
    host = await server.join(HOST)

    reply = await host.call("pin", {"product_id": ANCHOVY})

    assert reply["ok"] is False and reply["error"] == "not_in_lineup"
    assert await query(server, "SELECT pinned_product_id FROM shows WHERE id = :s", s=SHOW) == [(None,)]


async def test_a_product_added_to_the_line_up_on_purpose_can_be_pinned(server):
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{server.url}/api/shows/{SHOW}/segments",
                             json={"title": "Gift sets", "committee": "seafood", "product_ids": [ANCHOVY]},
                             headers={"Authorization": f"Bearer {await server.token(HOST)}"}) as response:
            assert response.status == 201, await response.text()
    host = await server.join(HOST)

    assert (await host.call("pin", {"product_id": ANCHOVY}))["ok"]
