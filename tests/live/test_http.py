"""WHIP and WHEP over HTTP: the real app, real aiortc peers, the demo show.

These prove the web layer around the hub: who may publish, what each bad request gets
back, that the show's status follows its publisher, and that the recording is served.
"""

from __future__ import annotations

import asyncio
from tempfile import NamedTemporaryFile

import av
import pytest
from aiortc import RTCSessionDescription

from tests.conftest import bearer, login
from tests.live.conftest import TestPublisher, in_order_with_few_gaps

SHOW = 1  # the demo show, hosted by host@livemall.example
SDP = {"Content-Type": "application/sdp"}


async def whip(client, publisher: TestPublisher, token: str, show: int = SHOW):
    return await client.post(f"/whip/{show}", data=await publisher.offer(), headers={**SDP, **bearer(token)})


async def answer(peer, response) -> str:
    assert response.status == 201, await response.text()
    assert response.content_type == "application/sdp"
    await peer.pc.setRemoteDescription(RTCSessionDescription(await response.text(), "answer"))
    return response.headers["Location"]


async def show_status(client, show: int = SHOW) -> str:
    return (await (await client.get(f"/api/shows/{show}")).json())["status"]


async def until_status(client, status: str, show: int = SHOW) -> None:
    deadline = asyncio.get_running_loop().time() + 10
    while (now := await show_status(client, show)) != status:
        assert asyncio.get_running_loop().time() < deadline, f"the show stayed {now}"
        await asyncio.sleep(0.1)


@pytest.fixture
async def host_token(client) -> str:
    return await login(client, "host@livemall.example")


async def test_host_publishes_viewers_watch_and_delete_ends_the_show(client, host_token, publisher, viewer):
    host = publisher()
    whip_location = await answer(host, await whip(client, host, host_token))
    assert whip_location.startswith(f"/whip/{SHOW}/")
    await until_status(client, "live")

    watcher = viewer()
    response = await client.post(f"/whep/{SHOW}", data=await watcher.offer(), headers=SDP)
    whep_location = await answer(watcher, response)
    assert whep_location.startswith(f"/whep/{SHOW}/")
    await watcher.frames(30)
    await watcher.until(lambda: watcher.audio_frames >= 10)
    assert in_order_with_few_gaps(watcher.counters)

    response = await client.delete(whip_location, headers=bearer(host_token))
    assert response.status == 200
    await until_status(client, "ended")
    await watcher.until(lambda: "video" in watcher.ended)

    # The show's recording is served once it ended, and it is a playable file.
    response = await client.get(f"/recordings/{SHOW}")
    assert response.status == 200
    assert response.content_type == "video/webm"
    body = await response.read()
    with NamedTemporaryFile(suffix=".webm") as copy:
        copy.write(body)
        copy.flush()
        with av.open(copy.name) as container:
            frames = sum(1 for _ in container.decode(video=0))
    assert frames >= 25


async def test_publishing_needs_a_token(client, publisher):
    response = await client.post(f"/whip/{SHOW}", data=await publisher().offer(), headers=SDP)
    assert response.status == 401
    assert (await response.json())["error"] == "unauthorized"


async def test_only_the_shows_host_may_publish(client, publisher):
    token = await login(client, "buyer@livemall.example")
    response = await whip(client, publisher(), token)
    assert response.status == 403
    assert (await response.json())["error"] == "forbidden"


async def test_a_bad_token_is_refused(client, publisher):
    response = await whip(client, publisher(), "not-a-token")
    assert response.status == 401


async def test_unknown_show_is_404_for_whip_and_whep(client, host_token, publisher, viewer):
    response = await whip(client, publisher(), host_token, show=9999)
    assert response.status == 404
    response = await client.post("/whep/9999", data=await viewer().offer(), headers=SDP)
    assert response.status == 404
    assert (await response.json())["error"] == "not_found"


@pytest.mark.parametrize(
    "body, content_type",
    [
        ("hello", "application/sdp"),
        ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", "application/sdp"),
        ('{"sdp": "v=0"}', "application/json"),
        ("", "application/sdp"),
    ],
    ids=["not-sdp", "no-media", "json-body", "empty"],
)
async def test_malformed_offers_get_400_json(client, host_token, body, content_type):
    response = await client.post(
        f"/whip/{SHOW}", data=body, headers={"Content-Type": content_type, **bearer(host_token)}
    )
    assert response.status == 400
    assert (await response.json())["error"] == "bad_offer"
    assert await show_status(client) == "scheduled"


async def test_an_oversized_offer_is_refused(client, host_token):
    response = await client.post(
        f"/whip/{SHOW}", data="v=0\r\n" + "a=x\r\n" * 20_000, headers={**SDP, **bearer(host_token)}
    )
    assert response.status == 413


async def test_whep_for_a_show_that_is_not_live_is_409(client, viewer):
    response = await client.post(f"/whep/{SHOW}", data=await viewer().offer(), headers=SDP)
    assert response.status == 409
    assert (await response.json())["error"] == "show_not_live"


async def test_a_second_publisher_is_409_and_the_first_keeps_the_show(client, host_token, publisher, viewer):
    first = publisher()
    await answer(first, await whip(client, first, host_token))
    response = await whip(client, publisher(), host_token)
    assert response.status == 409
    assert (await response.json())["error"] == "publisher_exists"

    watcher = viewer()
    await answer(watcher, await client.post(f"/whep/{SHOW}", data=await watcher.offer(), headers=SDP))
    await watcher.frames(10)


async def test_trickle_patch_is_405_and_unknown_session_delete_is_404(client, host_token, publisher):
    host = publisher()
    location = await answer(host, await whip(client, host, host_token))
    response = await client.patch(location, data="a=candidate", headers={"Content-Type": "application/trickle-ice-sdpfrag"})
    assert response.status == 405
    response = await client.delete(f"/whep/{SHOW}/no-such-session")
    assert response.status == 404
    assert (await response.json())["error"] == "unknown_session"
    assert await show_status(client) == "live"


async def test_only_the_host_may_end_the_show(client, host_token, publisher):
    host = publisher()
    location = await answer(host, await whip(client, host, host_token))
    buyer = await login(client, "buyer@livemall.example")
    response = await client.delete(location, headers=bearer(buyer))
    assert response.status == 403
    assert await show_status(client) == "live"


async def test_responses_carry_ice_server_links_and_no_cors_by_default(client, host_token, publisher):
    host = publisher()
    response = await whip(client, host, host_token)
    await answer(host, response)
    assert "Access-Control-Allow-Origin" not in response.headers
    response = await client.get("/api/ice-servers")
    assert response.status == 200
    assert isinstance((await response.json())["ice_servers"], list)


async def test_socketio_clients_see_the_show_go_live_and_end(demo_db, tmp_path, publisher):
    import aiohttp

    from tests.rooms.conftest import BUYER, HOST, start_server

    server = await start_server(demo_db, tmp_path)
    try:
        buyer = await server.join(BUYER)
        token = await server.token(HOST)
        host = publisher()
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{server.url}/whip/{SHOW}", data=await host.offer(), headers={**SDP, **bearer(token)}
            ) as response:
                location = await answer(host, response)

            assert await buyer.next("show_status", lambda d: d["status"] == "live")

            async with http.delete(f"{server.url}{location}", headers=bearer(token)) as response:
                assert response.status == 200
        assert await buyer.next("show_status", lambda d: d["status"] == "ended")
    finally:
        await server.close()


async def test_a_show_no_node_holds_is_reconnecting_then_ended_after_the_grace(client, viewer):
    # As after a SIGKILL: the database says live, but no relay holds the show.
    import time
    from datetime import datetime, timezone

    from orders import shows as show_repo
    from web.appkeys import DB, SETTINGS
    from web.media import end_orphaned_shows

    app = client.server.app
    async with app[DB].transaction() as session:
        await show_repo.mark_live(session, SHOW, datetime.now(timezone.utc), None)
    assert await show_status(client) == "live"
    now = time.monotonic()
    assert await end_orphaned_shows(app, now=now) == []
    assert await show_status(client) == "reconnecting"  # its host may publish again, anywhere
    response = await client.post(f"/whep/{SHOW}", data=await viewer().offer(), headers=SDP)
    assert response.status == 503 and (await response.json())["error"] == "origin_unavailable"
    assert response.headers["Retry-After"]

    later = now + app[SETTINGS].publisher_grace + 1
    assert await end_orphaned_shows(app, now=later) == [SHOW]
    assert await show_status(client) == "ended"


async def test_the_orphan_check_leaves_a_show_that_is_really_live(client, host_token, publisher):
    from web.media import end_orphaned_shows

    host = publisher()
    await answer(host, await whip(client, host, host_token))
    await until_status(client, "live")
    assert await end_orphaned_shows(client.server.app) == []
    assert await show_status(client) == "live"


async def test_a_viewer_sets_its_quality_on_its_whep_resource(client, host_token, publisher, viewer):
    host = publisher()
    await answer(host, await whip(client, host, host_token))
    watcher = viewer()
    location = await answer(watcher, await client.post(f"/whep/{SHOW}", data=await watcher.offer(), headers=SDP))

    accepted = await client.put(f"{location}/quality", json={"max_quality": "low"})
    unknown = await client.put(f"/whep/{SHOW}/n1.nope/quality", json={"max_quality": "low"})
    invalid = await client.put(f"{location}/quality", json={"max_quality": "ultra"})

    assert accepted.status == 204  # a single-layer show accepts it and has nothing to cap
    assert unknown.status == 404 and (await unknown.json())["error"] == "unknown_session"
    assert invalid.status in (400, 422)


async def test_a_delete_on_the_whep_route_never_ends_the_show_even_with_the_publishers_session(
    client, host_token, publisher
):
    host = publisher()
    whip_location = await answer(host, await whip(client, host, host_token))
    publisher_session = whip_location.rsplit("/", 1)[1]

    response = await client.delete(f"/whep/{SHOW}/{publisher_session}")

    assert response.status == 404 and (await response.json())["error"] == "unknown_session"
    assert await show_status(client) == "live"
