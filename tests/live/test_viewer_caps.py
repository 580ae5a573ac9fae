"""One client cannot take a node's viewer sessions: caps per client (an address, an
IPv6 /64 as one), per show and per node, and offers nobody connects are freed within
seconds (issue 14, item 3: 49 made-up offers from one address held every UDP port for
30 s, and 600 offers from 600 addresses of one /64 were all accepted)."""

from __future__ import annotations

import pytest
from aiortc import RTCSessionDescription

from live.errors import TooManyViewers
from live.hub import ViewerCaps
from tests.conftest import bearer, login, test_settings
from tests.live.conftest import eventually

SDP = {"Content-Type": "application/sdp"}


async def test_a_client_gets_no_more_sessions_than_its_cap_and_others_still_join(make_hub, publisher, viewer):
    hub = make_hub(viewer_caps=ViewerCaps(per_client=2))
    await publisher().publish(hub, 1)
    first, second = viewer(), viewer()
    held = [await hub.play(1, await v.offer(), client="203.0.113.7") for v in (first, second)]

    with pytest.raises(TooManyViewers) as refused:
        await hub.play(1, await viewer().offer(), client="203.0.113.7")
    assert refused.value.scope == "client"
    await hub.play(1, await viewer().offer(), client="198.51.100.1")  # someone else

    await hub.stop(1, held[0].id)  # a session given back makes room again
    await hub.play(1, await viewer().offer(), client="203.0.113.7")
    assert hub.stats()["viewers_refused_per_client_total"] == 1


async def test_the_show_and_the_node_caps_refuse_with_their_scope(make_hub, publisher, viewer):
    hub = make_hub(viewer_caps=ViewerCaps(per_show=1, per_node=2))
    await publisher().publish(hub, 1)
    await publisher().publish(hub, 2)
    await hub.play(1, await viewer().offer())
    with pytest.raises(TooManyViewers) as show_full:
        await hub.play(1, await viewer().offer())
    assert show_full.value.scope == "show"

    await hub.play(2, await viewer().offer())
    await publisher().publish(hub, 3)
    with pytest.raises(TooManyViewers) as node_full:
        await hub.play(3, await viewer().offer())
    assert node_full.value.scope == "node"


async def test_an_offer_nobody_connects_is_freed_and_its_port_serves_a_real_viewer(make_hub, publisher, viewer):
    # Two UDP ports: one for the publisher, one for a viewer.
    hub = make_hub(udp_ports=(41000, 41001), viewer_connect_timeout=1.0)
    await publisher().publish(hub, 1)
    await hub.play(1, await viewer().offer())  # an offer whose answer is never used

    real = viewer()
    await eventually(lambda: hub.stats()["viewers"] == 0, timeout=10)
    assert hub.stats()["viewers_never_connected_total"] == 1
    session = await hub.play(1, await real.offer())
    await real.pc.setRemoteDescription(RTCSessionDescription(session.answer_sdp, "answer"))
    await real.frames(10)


@pytest.fixture
async def capped_client(aiohttp_client, demo_db, tmp_path):
    from web.app import create_app

    settings = test_settings(demo_db, recordings_dir=tmp_path / "recordings", whep_per_address=2, rate_limits=False)
    return await aiohttp_client(create_app(settings))


async def test_whep_offers_from_one_ipv6_prefix_share_one_cap(capped_client, publisher, viewer):
    client = capped_client
    host = publisher()
    token = await login(client, "host@livemall.example")
    response = await client.post("/whip/1", data=await host.offer(), headers={**SDP, **bearer(token)})
    await host.pc.setRemoteDescription(RTCSessionDescription(await response.text(), "answer"))

    # The test client is on loopback, a trusted proxy: X-Forwarded-For names the client.
    statuses = []
    for n in range(1, 5):
        forwarded = {**SDP, "X-Forwarded-For": f"2001:db8:0:1::{n:x}"}
        statuses.append((await client.post("/whep/1", data=await viewer().offer(), headers=forwarded)).status)
    assert statuses == [201, 201, 429, 429]
    refused = await client.post("/whep/1", data=await viewer().offer(), headers={**SDP, "X-Forwarded-For": "2001:db8:0:1::99"})
    assert refused.headers["Retry-After"]
    assert (await refused.json())["error"] == "too_many_viewers"

    other_prefix = {**SDP, "X-Forwarded-For": "2001:db8:0:2::1"}
    assert (await client.post("/whep/1", data=await viewer().offer(), headers=other_prefix)).status == 201
