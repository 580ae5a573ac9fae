"""Issue 14, item 8: a host demoted to buyer kept pinning, muting, setting slow mode,
deleting chat, passing WHIP authorisation and opening the studio, because the host
check read `shows.host_id` and not the account's role. A role change now takes effect
at once, on sockets opened before it too."""

from __future__ import annotations

import aiohttp
import pytest

from tests.rooms.conftest import ADMIN, BUYER, HOST, SHOW

HOST_ID = 2  # the demo host, host of show 1

CONTROLS = [
    ("pin", {"product_id": 1}),
    ("unpin", {}),
    ("segment", {"segment_id": 1}),
    ("delete_chat", {"id": 1}),
    ("mute", {"user_id": 4, "seconds": 7 * 24 * 3600}),
    ("slow_mode", {"seconds": 3600}),
]


async def set_role(server, user_id: int, role: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.patch(f"{server.url}/api/admin/users/{user_id}", json={"role": role},
                              headers={"Authorization": f"Bearer {await server.token(ADMIN)}"}) as response:
            assert response.status == 200, await response.text()


@pytest.mark.parametrize("event,data", CONTROLS, ids=[c[0] for c in CONTROLS])
async def test_a_host_demoted_while_connected_loses_the_control_on_the_open_socket(server, event, data):
    host = await server.join(HOST)
    buyer = await server.join(BUYER)
    said = await buyer.call("chat", {"text": "hello"})
    if event == "delete_chat":
        data = {"id": said["id"]}

    await set_role(server, HOST_ID, "buyer")
    reply = await host.call(event, data)

    assert reply["ok"] is False and reply["error"] == "forbidden", reply


async def test_the_demoted_host_no_longer_skips_slow_mode(server):
    admin = await server.join(ADMIN)
    host = await server.join(HOST)
    assert (await admin.call("slow_mode", {"seconds": 60}))["ok"]
    assert (await host.call("chat", {"text": "hosts are not slowed"}))["ok"]
    assert (await host.call("chat", {"text": "still not slowed"}))["ok"]

    await set_role(server, HOST_ID, "buyer")
    await host.call("chat", {"text": "first as a buyer"})
    reply = await host.call("chat", {"text": "second within the minute"})

    assert reply["ok"] is False and reply["error"] == "slow_mode"


async def test_a_demoted_hosts_open_socket_stops_receiving_questions_at_once(server):
    host = await server.join(HOST)
    admin = await server.join(ADMIN)  # also in the host room: tells when a question went out
    buyer = await server.join(BUYER)
    before = await buyer.call("ask", {"text": "Asked while they host"})
    await host.next("question", lambda q: q["id"] == before["id"])

    await set_role(server, HOST_ID, "buyer")
    after = await buyer.call("ask", {"text": "Asked after the demotion"})
    await admin.next("question", lambda q: q["id"] == after["id"])
    await host.call("chat", {"text": "a round trip on the host's socket"})

    assert [q["id"] for q in host.seen("question")] == [before["id"]]


async def test_a_host_made_host_again_gets_the_controls_on_a_new_connection(server):
    await set_role(server, HOST_ID, "buyer")
    await set_role(server, HOST_ID, "host")
    host = await server.join(HOST)
    assert (await host.call("slow_mode", {"seconds": 5}))["ok"]


async def test_whip_authorisation_refuses_a_demoted_host(server):
    token = await server.token(HOST)
    await set_role(server, HOST_ID, "buyer")
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{server.url}/whip/{SHOW}", data="v=0\r\n",
                             headers={"Authorization": f"Bearer {token}", "Content-Type": "application/sdp"}) as r:
            assert r.status == 403
            assert (await r.json())["error"] == "forbidden"


async def test_the_studio_sends_a_demoted_host_to_sign_in(server):
    token = await server.token(HOST)
    await set_role(server, HOST_ID, "member")
    async with aiohttp.ClientSession(cookies={"livemall_session": token}) as http:
        async with http.get(f"{server.url}/studio/{SHOW}", allow_redirects=False) as r:
            assert r.status == 303
            assert r.headers["Location"].startswith("/login?next=")


async def test_the_studio_still_opens_for_the_host(server):
    token = await server.token(HOST)
    async with aiohttp.ClientSession(cookies={"livemall_session": token}) as http:
        async with http.get(f"{server.url}/studio/{SHOW}", allow_redirects=False) as r:
            assert r.status == 200
