"""Giveaways over real Socket.IO clients: who may open and enter, each refusal's code,
what the room sees (the committed seed hash, the entries count, the result with its
proof), the winner's zero-price order — and, on two nodes sharing Redis and a database,
one draw whichever node's timer or sweeper gets there first."""

from __future__ import annotations

import hashlib

import pytest
import redis.asyncio as aioredis
from sqlalchemy import text

from orders.db import Database
from tests.rooms.conftest import ADMIN, BUYER, HOST, MEMBER, query

GIVEAWAY = {"product_id": 1, "seconds": 60}


async def close_window(database: str, giveaway_id: int) -> None:
    """Bring the window's end to now (the sweeper draws it within a second), so the test
    does not wait out a real window; the two-node test below does."""
    db = Database(database)
    try:
        async with db.transaction() as session:
            await session.execute(text("UPDATE giveaways SET closes_at = created_at WHERE id = :id"),
                                  {"id": giveaway_id})
    finally:
        await db.close()


def recheck(result: dict, entrants: list[int]) -> int:
    """The winner as anyone recomputes it from the revealed seed and the entry list."""
    seed = bytes.fromhex(result["seed"])
    assert hashlib.sha256(seed).hexdigest() == result["seed_hash"]
    listing = "\n".join(str(u) for u in sorted(entrants)).encode()
    assert hashlib.sha256(listing).hexdigest() == result["entries_hash"]
    digest = hashlib.sha256(seed + bytes.fromhex(result["entries_hash"])).digest()
    return sorted(entrants)[int.from_bytes(digest, "big") % len(entrants)]


async def test_a_viewer_opening_a_giveaway_is_forbidden(server):
    member = await server.join(MEMBER)
    reply = await member.call("giveaway_open", GIVEAWAY)
    assert (reply["ok"], reply["error"]) == (False, "forbidden")
    assert await query(server, "SELECT count(*) FROM giveaways") == [(0,)]


async def test_entries_by_tap_reach_the_room_and_each_bad_entry_has_its_code(server):
    host = await server.join(HOST)
    buyer = await server.join(BUYER)
    anonymous = await server.join(None)
    opened = (await host.call("giveaway_open", GIVEAWAY))["giveaway"]
    state = await anonymous.next("giveaway_state")
    assert state["seed_hash"] == opened["seed_hash"] and "seed" not in state

    entered = await buyer.call("giveaway_enter", {"giveaway_id": opened["id"]})
    twice = await buyer.call("giveaway_enter", {"giveaway_id": opened["id"]})
    signed_out = await anonymous.call("giveaway_enter", {"giveaway_id": opened["id"]})
    by_host = await host.call("giveaway_enter", {"giveaway_id": opened["id"]})

    assert (entered["ok"], entered["entries"]) == (True, 1)
    assert (await anonymous.next("giveaway_state", lambda s: s["entries"] == 1))["id"] == opened["id"]
    assert [twice["error"], signed_out["error"], by_host["error"]] == [
        "already_entered", "unauthorized", "host_cannot_enter"]
    assert await query(server, "SELECT user_id FROM giveaway_entries") == [(4,)]


async def test_a_buyers_only_giveaway_refuses_a_viewer_without_an_order_of_the_show(server):
    host = await server.join(HOST)
    member = await server.join(MEMBER)
    opened = (await host.call("giveaway_open", {**GIVEAWAY, "only": "buyers"}))["giveaway"]

    reply = await member.call("giveaway_enter", {"giveaway_id": opened["id"]})

    assert reply["error"] == "not_eligible"
    assert await query(server, "SELECT count(*) FROM giveaway_entries") == [(0,)]


async def test_the_draw_reaches_the_room_with_its_proof_and_the_winner_gets_a_zero_price_order(server):
    host = await server.join(HOST)
    entrants = {4: await server.join(BUYER), 3: await server.join(MEMBER)}
    watcher = await server.join(None)
    opened = (await host.call("giveaway_open", GIVEAWAY))["giveaway"]
    for client in entrants.values():
        assert (await client.call("giveaway_enter", {"giveaway_id": opened["id"]}))["ok"]

    await close_window(server.database, opened["id"])
    result = await watcher.next("giveaway_result")

    audit = await watcher.call("giveaway_entries", {"giveaway_id": opened["id"]})
    assert audit["entrants"] == [3, 4]
    winner = recheck(result, audit["entrants"])
    assert (result["status"], result["winner"]["id"], result["winner_index"]) == (
        "drawn", winner, audit["entrants"].index(winner))
    assert result["winner"]["name"]
    order = await entrants[winner].next("order")
    assert (order["unit_price"], order["total"], order["status"], order["product_id"]) == (0, 0, "pending", 1)
    assert await query(server, "SELECT stock FROM products WHERE id = 1") == [(119,)]
    late = await entrants[3].call("giveaway_enter", {"giveaway_id": opened["id"]})
    assert late["error"] == "giveaway_ended"


# --- two nodes sharing Redis -------------------------------------------------------------

@pytest.fixture
async def pair(start, redis_url):
    client = aioredis.from_url(redis_url)
    await client.flushdb()
    await client.aclose()
    return await start(redis=redis_url, node_name="n1"), await start(redis=redis_url, node_name="n2")


async def test_two_nodes_draw_once_at_the_windows_end_and_both_rooms_get_the_one_result(pair):
    a, b = pair
    host = await a.join(HOST)
    clients = {4: await a.join(BUYER), 3: await b.join(MEMBER), 1: await b.join(ADMIN)}
    watcher_a, watcher_b = await a.join(None), await b.join(None)
    opened = (await host.call("giveaway_open", {**GIVEAWAY, "seconds": 10}))["giveaway"]
    for client in clients.values():
        assert (await client.call("giveaway_enter", {"giveaway_id": opened["id"]}))["ok"]

    # n1 holds the timer; both nodes sweep each second: whichever gets there first draws.
    result_b = await watcher_b.next("giveaway_result", timeout=20)
    result_a = await watcher_a.next("giveaway_result", timeout=5)

    assert result_a == result_b
    winner = recheck(result_b, [1, 3, 4])
    assert result_b["winner"]["id"] == winner
    order = await clients[winner].next("order")
    assert order["unit_price"] == 0
    assert await query(a, "SELECT buyer_id, unit_price, quantity FROM orders") == [(winner, 0, 1)]
    assert await query(a, "SELECT stock FROM products WHERE id = 1") == [(119,)]
    assert await query(a, "SELECT status, winner_id, order_id FROM giveaways") == [("drawn", winner, order["id"])]
