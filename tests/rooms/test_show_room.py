"""The show room over real Socket.IO: state on joining, chat, reactions, viewer counts,
reconnects and the events other packages send through app[EVENTS]."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import aiohttp
from sqlalchemy import select, update

from orders.db import Database
from orders.models import Show, User
from rooms.models import ChatMessage
from rooms.engineio_hooks import WS_ATTR, websocket_transport
from rooms.server import ROOMS
from tests.rooms.conftest import ADMIN, BUYER, HOST, MEMBER, SHOW, query
from web.appkeys import EVENTS, VIEWER_COUNT


async def _seed_chat(url: str, count: int) -> None:
    database = Database(url)
    async with database.transaction() as session:
        buyer = await session.scalar(select(User).where(User.email == BUYER))
        start = datetime.now(timezone.utc) - timedelta(minutes=5)
        for i in range(count):
            session.add(ChatMessage(show_id=SHOW, user_id=buyer.id, text=f"old {i}", created_at=start + timedelta(seconds=i)))
    await database.close()


async def test_joining_socket_gets_state_with_segment_pin_viewers_and_last_50_messages(server):
    await _seed_chat(server.database, 60)
    host = await server.join(HOST)
    assert (await host.call("segment", {"segment_id": 2}))["ok"]
    assert (await host.call("pin", {"product_id": 5}))["ok"]

    viewer = await server.join(BUYER)
    state = viewer.seen("state")[0]

    assert state["status"] == "scheduled"
    assert state["show"]["id"] == SHOW
    assert state["segment"]["id"] == 2 and state["segment"]["committee"]["code"] == "cosmetics"
    assert state["pin"]["id"] == 5 and state["pin"]["currency"] == "USD"
    assert state["viewers"] == 2
    assert state["slow_mode"] == 0
    assert [m["text"] for m in state["chat"]] == [f"old {i}" for i in range(10, 60)]
    assert state["me"]["role"] == "buyer" and state["host"] is False


async def test_chat_is_stored_and_reaches_everyone_with_id_user_role_and_time(server):
    host = await server.join(HOST)
    buyer = await server.join(BUYER)
    anonymous = await server.join(None)

    ack = await buyer.call("chat", {"text": "  안녕하세요 <script>alert(1)</script>  "})

    assert ack["ok"] and isinstance(ack["id"], int)
    for client in (host, buyer, anonymous):
        message = await client.next("chat", lambda m: m["id"] == ack["id"])
        assert message["text"] == "안녕하세요 <script>alert(1)</script>"  # raw: escaped where rendered
        assert message["room"] == "show"
        assert message["user"]["name"] == "王芳" and message["user"]["role"] == "buyer"
        assert datetime.fromisoformat(message["at"]).tzinfo is not None
    rows = await query(server, "SELECT text, show_id FROM chat_messages WHERE id = :id", id=ack["id"])
    assert rows == [("안녕하세요 <script>alert(1)</script>", SHOW)]


async def test_host_messages_carry_the_host_role(server):
    host = await server.join(HOST)
    ack = await host.call("chat", {"text": "welcome"})
    message = await host.next("chat", lambda m: m["id"] == ack["id"])
    assert message["user"]["role"] == "host"


async def test_anonymous_socket_may_read_but_not_chat_or_ask(server):
    anonymous = await server.join(None)
    assert (await anonymous.call("chat", {"text": "hi"}))["error"] == "unauthorized"
    assert (await anonymous.call("ask", {"text": "price?"}))["error"] == "unauthorized"
    assert anonymous.seen("state")[0]["me"] is None


async def test_message_over_500_characters_is_refused(server):
    buyer = await server.join(BUYER)
    reply = await buyer.call("chat", {"text": "가" * 501})
    assert reply["ok"] is False and reply["error"] == "invalid" and reply["field"] == "text"
    assert (await buyer.call("chat", {"text": "가" * 500}))["ok"]


async def test_empty_and_control_character_messages_are_refused(server):
    buyer = await server.join(BUYER)
    assert (await buyer.call("chat", {"text": "   "}))["error"] == "invalid"
    assert (await buyer.call("chat", {"text": "a\x00b"}))["error"] == "invalid"
    assert (await buyer.call("chat", {"text": "line one\nline two"}))["ok"]


async def test_sixth_message_in_ten_seconds_is_rate_limited(server):
    buyer = await server.join(BUYER)
    for i in range(5):
        assert (await buyer.call("chat", {"text": f"m{i}"}))["ok"]
    reply = await buyer.call("chat", {"text": "one too many"})
    assert reply["ok"] is False and reply["error"] == "rate_limited" and 1 <= reply["retry_after"] <= 10


async def test_malformed_payloads_get_defined_refusals_and_do_not_disturb_others(server):
    buyer = await server.join(BUYER)
    other = await server.join(MEMBER)
    assert (await buyer.call("chat", "just a string"))["error"] == "invalid"
    assert (await buyer.call("chat", {"text": 5}))["error"] == "invalid"
    assert (await buyer.call("chat", {"text": "hi", "extra": True}))["error"] == "invalid"
    assert (await buyer.call("chat", {"text": "hi", "room": "lobby"}))["error"] == "invalid"
    assert (await buyer.call("chat", [1, 2, 3]))["error"] == "invalid"
    assert (await buyer.call("react", {"kind": "spam"}))["error"] == "invalid"
    assert (await buyer.call("no_such_event", {}))["error"] == "unknown_event"
    ack = await other.call("chat", {"text": "still fine"})
    assert (await buyer.next("chat", lambda m: m["id"] == ack["id"]))["text"] == "still fine"


async def test_packet_over_the_engineio_buffer_limit_drops_only_that_socket(server):
    buyer = await server.join(BUYER)
    other = await server.join(MEMBER)
    dropped = asyncio.Event()
    buyer.client.on("disconnect", lambda *a: dropped.set())

    await buyer.client.emit("chat", {"text": "x" * 70_000})  # the limit is 64 KiB

    await asyncio.wait_for(dropped.wait(), 10)
    ack = await other.call("chat", {"text": "unaffected"})
    assert ack["ok"]
    assert (await other.next("chat", lambda m: m["id"] == ack["id"]))["text"] == "unaffected"


async def test_reactions_are_sent_in_aggregate_not_per_tap(server):
    watcher = await server.join(MEMBER)
    anonymous = await server.join(None)
    for _ in range(5):
        assert (await anonymous.call("react", {"kind": "heart"}))["ok"]
    assert (await watcher.call("react", {"kind": "clap"}))["ok"]

    def totals() -> dict[str, int]:
        out: dict[str, int] = {}
        for event in watcher.seen("reactions"):
            for kind, n in event["counts"].items():
                out[kind] = out.get(kind, 0) + n
        return out

    await watcher.next("reactions", lambda _: totals() == {"heart": 5, "clap": 1})
    assert len(watcher.seen("reactions")) <= 2  # one a second, not one per tap


async def test_one_socket_cannot_tap_more_than_ten_times_a_second(server):
    anonymous = await server.join(None)
    replies = [await anonymous.call("react", {"kind": "fire"}) for _ in range(25)]
    refused = [r for r in replies if not r["ok"]]
    assert refused and refused[0]["error"] == "rate_limited"
    assert sum(r["ok"] for r in replies) <= 20  # at most two one-second windows


async def test_viewer_count_counts_a_user_with_two_tabs_once(server):
    first = await server.join(BUYER)
    await server.join(BUYER)
    await server.join(None)
    await server.join(None)

    update = await first.next("viewers", lambda v: v["count"] == 3)

    assert update == {"count": 3}
    assert server.app[VIEWER_COUNT](SHOW) == 3


async def test_viewer_count_drops_when_a_viewer_leaves(server):
    first = await server.join(BUYER)
    second = await server.join(MEMBER)
    await first.next("viewers", lambda v: v["count"] == 2)
    await second.close()
    assert await first.next("viewers", lambda v: v["count"] == 1)


async def test_distinct_viewers_are_recorded_once_and_peak_kept(server):
    await server.join(BUYER)
    await server.join(BUYER)
    watcher = await server.join(MEMBER)
    await watcher.next("viewers", lambda v: v["count"] == 2)
    await server.app[ROOMS].presence_tick()  # flushes the audience ledger now

    rows = await query(server, "SELECT viewer_key, user_id FROM show_viewers WHERE show_id = :s ORDER BY id", s=SHOW)
    peak = await query(server, "SELECT peak_viewers FROM shows WHERE id = :s", s=SHOW)
    assert sorted(r[0] for r in rows) == ["u3", "u4"]
    assert peak == [(2,)]


async def test_reconnect_with_last_id_gets_the_messages_it_missed(server):
    buyer = await server.join(BUYER)
    first = await buyer.call("chat", {"text": "before the drop"})
    await buyer.next("chat", lambda m: m["id"] == first["id"])
    await buyer.close()

    host = await server.join(HOST)
    missed = [(await host.call("chat", {"text": f"while away {i}"}))["id"] for i in range(3)]

    back = await server.join(BUYER, last_id=first["id"])
    state = back.seen("state")[0]
    assert [m["id"] for m in state["chat"]] == missed
    assert state["chat_gap"] is False


async def test_reconnect_after_missing_more_than_500_gets_the_latest_500_and_a_gap_flag(server):
    buyer = await server.join(BUYER)
    first = await buyer.call("chat", {"text": "before a long drop"})
    await buyer.close()
    await _seed_chat(server.database, 510)

    back = await server.join(BUYER, last_id=first["id"])

    state = back.seen("state")[0]
    assert state["chat_gap"] is True
    assert [m["text"] for m in state["chat"]] == [f"old {i}" for i in range(10, 510)]


async def test_client_reconnecting_by_itself_resumes_from_its_last_message(server):
    """The python-socketio client reconnects after a drop; a callable auth carries the last id."""
    host = await server.join(HOST)
    buyer = server.viewer("buyer", reconnection=True, reconnection_delay=0.1, reconnection_delay_max=0.2)
    token = await server.token(BUYER)

    def auth() -> dict:
        ids = [m["id"] for m in buyer.seen("chat")] + [m["id"] for s in buyer.seen("state") for m in s["chat"]]
        return {"show": SHOW, "token": token, **({"last_id": max(ids)} if ids else {})}

    await buyer.connect(auth)
    seen = await host.call("chat", {"text": "seen"})
    await buyer.next("chat", lambda m: m["id"] == seen["id"])
    # Drop the connection under the client (as a network failure would).
    rooms = server.app[ROOMS]
    sid = next(s for s, c in rooms.conns.items() if c.author and c.author.id == 4)
    reconnected = asyncio.Event()
    buyer.client.on("connect", lambda: reconnected.set())
    missed = await host.call("chat", {"text": "missed"})
    ws = getattr(rooms.eio_socket(sid), WS_ATTR)
    websocket_transport(ws).abort()

    await asyncio.wait_for(reconnected.wait(), 10)
    state = await buyer.next("state", lambda s: any(m["id"] == missed["id"] for m in s["chat"]))
    assert [m["text"] for m in state["chat"]] == ["missed"]


async def test_unknown_show_bad_token_and_missing_auth_are_refused(server):
    assert (await server.viewer().refusal({"show": 999}))["data"]["error"] == "not_found"
    assert (await server.viewer().refusal({"show": SHOW, "token": "forged"}))["data"]["error"] == "unauthorized"
    assert (await server.viewer().refusal(None))["data"]["error"] == "invalid"
    assert (await server.viewer().refusal({"show": "1"}))["data"]["error"] == "invalid"


async def test_events_from_other_packages_reach_the_show_and_only_the_buyer(server):
    buyer = await server.join(BUYER)
    member = await server.join(MEMBER)
    events = server.app[EVENTS]

    await events.to_show(SHOW, "stock", {"product_id": 1, "stock": 7})
    await events.to_show(SHOW, "show_status", {"status": "live"})
    await events.to_user(4, "order", {"id": 99, "status": "pending"})

    for client in (buyer, member):
        assert await client.next("stock") == {"product_id": 1, "stock": 7}
        assert await client.next("show_status") == {"status": "live"}
    assert await buyer.next("order") == {"id": 99, "status": "pending"}
    assert member.seen("order") == []


async def test_busy_room_gets_batches_in_order_with_fewer_packets_than_messages(server):
    host = await server.join(HOST)
    watcher = await server.join(BUYER)
    acks = await asyncio.gather(*(host.call("chat", {"text": f"burst {i}"}) for i in range(30)))
    ids = [a["id"] for a in acks]
    last = max(ids)
    await watcher.next("chat", lambda m: m["id"] == last)

    received = [m["id"] for m in watcher.seen("chat")]
    assert sorted(received) == sorted(ids) and received == sorted(received)
    assert watcher.packets < 30


async def test_each_event_is_encoded_once_and_each_flush_framed_once_whatever_the_audience(server, monkeypatch):
    from rooms import batching

    host = await server.join(HOST)
    audience = [await server.join(None) for _ in range(5)]
    encoded: list[str] = []
    framed: list[bytes] = []
    fragment, text_frame = batching.fragment, batching._text_frame
    monkeypatch.setattr(batching, "fragment", lambda e, d: encoded.append(e) or fragment(e, d))
    monkeypatch.setattr(batching, "_text_frame", lambda p: framed.append(p) or text_frame(p))
    flushes = server.app[ROOMS].broadcaster.stats.flushes

    acks = await asyncio.gather(*(host.call("chat", {"text": f"crowd {i}"}) for i in range(20)))
    last = max(a["id"] for a in acks)
    for viewer in [host, *audience]:
        await viewer.next("chat", lambda m: m["id"] == last)

    assert encoded.count("chat") == 20  # not 20 × 6 recipients
    assert len(framed) == server.app[ROOMS].broadcaster.stats.flushes - flushes  # one frame per flush
    assert all(len(v.seen("chat")) == 20 for v in audience)


async def test_socketio_session_ids_start_with_the_node_name(start):
    server = await start(node_name="n2")
    await server.join(None)
    (sock,) = server.app[ROOMS].sio.eio.sockets
    assert sock.startswith("n2.")


async def test_socketio_refuses_a_foreign_origin_by_default(server):
    async with aiohttp.ClientSession() as http:
        async with http.get(
            f"{server.url}/socket.io/?EIO=4&transport=polling", headers={"Origin": "https://evil.example"}
        ) as response:
            assert response.status == 400
        async with http.get(
            f"{server.url}/socket.io/?EIO=4&transport=polling", headers={"Origin": server.url}
        ) as response:
            assert response.status == 200


async def test_configured_origin_may_connect(start):
    server = await start(socketio_origins=("https://shop.example",))
    async with aiohttp.ClientSession() as http:
        async with http.get(
            f"{server.url}/socket.io/?EIO=4&transport=polling", headers={"Origin": "https://shop.example"}
        ) as response:
            assert response.status == 200
            assert response.headers["Access-Control-Allow-Origin"] == "https://shop.example"


async def test_draining_node_drops_its_sockets_so_they_reconnect_and_refuses_new_ones(server):
    from web.drain import drain

    viewer = await server.join(BUYER)
    await server.viewer("polling").connect({"show": SHOW}, transports=["polling"])
    reasons: list[str] = []
    gone = asyncio.Event()
    viewer.client.on("disconnect", lambda reason=None: (reasons.append(reason), gone.set()))

    await drain(server.app, 0)

    await asyncio.wait_for(gone.wait(), 10)
    # A dropped transport, not a Socket.IO DISCONNECT: clients reconnect after it.
    assert reasons == [viewer.client.reason.TRANSPORT_ERROR]
    assert server.app[ROOMS].conns == {}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/socket.io/?EIO=4&transport=polling") as response:
            assert response.status == 503


async def test_chat_works_over_long_polling_too(server):
    token = await server.token(BUYER)
    polling = await server.viewer("polling").connect({"show": SHOW, "token": token}, transports=["polling"])
    ack = await polling.call("chat", {"text": "from polling"})
    assert (await polling.next("chat", lambda m: m["id"] == ack["id"]))["text"] == "from polling"


async def test_admin_counts_as_host_in_any_show(server):
    admin = await server.join(ADMIN)
    assert (await admin.call("slow_mode", {"seconds": 5}))["ok"]
    assert admin.seen("state")[0]["host"] is True


async def test_stale_session_cookie_still_watches_anonymously(server):
    viewer = server.viewer()
    await viewer.connect({"show": SHOW}, headers={"Cookie": "livemall_session=expired-or-forged"})
    assert viewer.seen("state")[0]["me"] is None


async def test_session_cookie_signs_the_socket_in(server):
    token = await server.token(MEMBER)
    viewer = server.viewer()
    await viewer.connect({"show": SHOW}, headers={"Cookie": f"livemall_session={token}"})
    assert viewer.seen("state")[0]["me"]["name"] == "Иван Петров"


async def test_state_reports_a_live_show(server):
    database = Database(server.database)
    async with database.transaction() as session:
        await session.execute(
            update(Show).where(Show.id == SHOW).values(status="live", started_at=datetime.now(timezone.utc))
        )
    await database.close()
    viewer = await server.join(None)
    assert viewer.seen("state")[0]["status"] == "live"


async def test_show_detail_reports_the_live_viewer_count(server):
    await server.join(BUYER)
    await server.join(None)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/api/shows/{SHOW}") as response:
            assert (await response.json())["viewers"] == 2
