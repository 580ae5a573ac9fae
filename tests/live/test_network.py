"""A node behind a 1:1 NAT and a firewall: its ICE host candidates announce the configured
public IP and bind in the configured UDP port range, and media still flows.

In tests/run's namespace the relay's only host address is 127.0.0.2, so 127.0.0.2 plays
the public IP (media must still reach it); a second loopback address, 127.0.0.3, plays
a private address the relay must not announce.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator, Iterator

import pytest
from aioice import stun
from aiortc import RTCSessionDescription

from live.errors import RelayUnavailable
from live.hub import LiveHub
from live.ice_sockets import parse_port_range
from tests.conftest import bearer, login, test_settings
from tests.live.conftest import in_order_with_few_gaps
from web.cli import build_parser, settings_from

PUBLIC_IP = "127.0.0.2"
SDP = {"Content-Type": "application/sdp"}


def candidates(sdp: str) -> list[tuple[str, int, str]]:
    """(address, port, type) of each ``a=candidate`` line."""
    found = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            fields = line.split()
            found.append((fields[4], int(fields[5]), fields[7]))
    return found


def in_range(port: int, ports: tuple[int, int]) -> bool:
    return ports[0] <= port <= ports[1]


@pytest.fixture
def private_address() -> Iterator[str]:
    """127.0.0.3 on the namespace's loopback while the test runs: a host address that
    aioice gathers and that only the announced public IP may replace."""
    if os.environ.get("LIVEMALL_IN_NETNS") != "1":
        pytest.skip("changes the network: only inside the private namespace of tests/run")
    subprocess.run(["ip", "addr", "add", "127.0.0.3/8", "dev", "lo"], check=True)
    try:
        yield "127.0.0.3"
    finally:
        subprocess.run(["ip", "addr", "del", "127.0.0.3/8", "dev", "lo"], check=False)


class StunServer(asyncio.DatagramProtocol):
    """Answers STUN binding requests with the address they came from (RFC 8489)."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.requests = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        request = stun.parse_message(data)
        self.requests += 1
        response = stun.Message(
            message_method=stun.Method.BINDING,
            message_class=stun.Class.RESPONSE,
            transaction_id=request.transaction_id,
        )
        response.attributes["XOR-MAPPED-ADDRESS"] = addr
        response.add_fingerprint()
        assert self.transport is not None
        self.transport.sendto(bytes(response), addr)


@pytest.fixture
async def stun_server() -> AsyncIterator[str]:
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        StunServer, local_addr=("127.0.0.2", 0)
    )
    yield f"stun:127.0.0.2:{transport.get_extra_info('sockname')[1]}"
    transport.close()


# --- the hub ----------------------------------------------------------------------------


async def test_answers_announce_the_public_ip_on_ports_of_the_range_and_media_flows(
    make_hub, publisher, viewer, private_address
):
    ports = (61000, 61019)
    hub = make_hub(public_ip=PUBLIC_IP, udp_ports=ports)
    published = await publisher().publish(hub, 1)
    watcher = viewer()
    played = await watcher.join(hub, 1)

    await watcher.frames(30)

    for answer in (published.answer_sdp, played.answer_sdp):
        found = set(candidates(answer))  # (every bundled m-line repeats them)
        # one host candidate per relay address (127.0.0.2 and 127.0.0.3), all announced
        # at the public IP, none at the private one
        assert len(found) == 2, found
        assert {(address, kind) for address, _, kind in found} == {(PUBLIC_IP, "host")}
        assert all(in_range(port, ports) for _, port, _ in found), found
    assert in_order_with_few_gaps(watcher.counters), watcher.counters


async def test_a_session_is_refused_when_the_port_range_is_full_and_its_ports_come_back(
    make_hub, publisher, viewer
):
    hub = make_hub(udp_ports=(61100, 61100))  # one host address here: one session's worth
    first = await publisher().publish(hub, 1)

    with pytest.raises(RelayUnavailable):
        await viewer().join(hub, 1)
    assert hub.is_live(1) and hub.stats()["viewers"] == 0

    await hub.stop(1, first.id)
    second = await publisher().publish(hub, 1)
    assert candidates(second.answer_sdp)[0][1] == 61100


def test_port_ranges_and_public_ips_are_checked_when_the_relay_starts():
    assert parse_port_range("40000-40100") == (40000, 40100)
    assert parse_port_range(" 40000 ") == (40000, 40000)
    for bad in ("", "40100-40000", "80-90", "40000-70000", "forty-fifty"):
        with pytest.raises(ValueError):
            parse_port_range(bad)
    with pytest.raises(ValueError):
        LiveHub(public_ip="my.public.host")  # an address, not a name


# --- through `livemall serve`'s flags and the HTTP routes ---------------------------------


async def _serve(aiohttp_client, demo_db: str, tmp_path, *flags: str):
    """An app whose relay settings come from `livemall serve` flags."""
    from web.app import create_app

    parsed = settings_from(build_parser().parse_args(["serve", *flags]))
    settings = test_settings(
        demo_db,
        recordings_dir=tmp_path / "recordings",
        ice_servers=parsed.ice_servers,
        public_ip=parsed.public_ip,
        udp_ports=parsed.udp_ports,
    )
    return await aiohttp_client(create_app(settings))


async def _answer(peer, response) -> str:
    assert response.status == 201, await response.text()
    sdp = await response.text()
    await peer.pc.setRemoteDescription(RTCSessionDescription(sdp, "answer"))
    return sdp


async def test_serve_flags_for_ice_servers_public_ip_and_ports_reach_the_relay(
    aiohttp_client, demo_db, tmp_path, stun_server, publisher, viewer
):
    client = await _serve(
        aiohttp_client, demo_db, tmp_path,
        "--ice-server", stun_server, "--public-ip", PUBLIC_IP, "--udp-ports", "61200-61209",
    )
    token = await login(client, "host@livemall.example")
    host = publisher()
    await _answer(host, await client.post("/whip/1", data=await host.offer(), headers={**SDP, **bearer(token)}))

    watcher = viewer()
    answer = await _answer(watcher, await client.post("/whep/1", data=await watcher.offer(), headers=SDP))
    await watcher.frames(30)

    found = candidates(answer)
    # the STUN server of --ice-server answered the relay: a server-reflexive candidate
    assert "srflx" in {kind for _, _, kind in found}, found
    assert {address for address, _, _ in found} == {PUBLIC_IP}
    assert all(in_range(port, (61200, 61209)) for _, port, _ in found), found
    assert in_order_with_few_gaps(watcher.counters)


async def test_whep_gets_503_json_when_the_port_range_is_full(
    aiohttp_client, demo_db, tmp_path, publisher, viewer
):
    client = await _serve(aiohttp_client, demo_db, tmp_path, "--udp-ports", "61210-61210")
    token = await login(client, "host@livemall.example")
    host = publisher()
    await _answer(host, await client.post("/whip/1", data=await host.offer(), headers={**SDP, **bearer(token)}))

    response = await client.post("/whep/1", data=await viewer().offer(), headers=SDP)

    assert response.status == 503
    assert (await response.json())["error"] == "relay_unavailable"
