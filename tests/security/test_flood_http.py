"""Issue 14, item 4: 10,000 connections sending a partial HTTP request exhausted the
node's file descriptors, and an idle partial request stayed open 400 s. Now a request
head must arrive within `http_header_timeout`, and the node holds at most
`http_max_connections` connections (`http_connections_per_address` from one address)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from tests.conftest import free_port, test_settings
from web.aiohttp_hooks import cap_connections
from web.app import create_app

PARTIAL = b"GET /healthz HTTP/1.1\r\nHost: example\r\nX-Slow: "


async def closed_by_server(reader: asyncio.StreamReader, within: float = 10) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), within) is not None
    except asyncio.TimeoutError:
        return False


async def serve(tmp_path: Path, database: str, **overrides) -> tuple[web.AppRunner, int]:
    """The app as `livemall serve` runs it (web/cli.py): runner, caps, one site."""
    settings = test_settings(database, recordings_dir=tmp_path / "rec", **overrides)
    runner = web.AppRunner(create_app(settings))
    await runner.setup()
    cap_connections(runner, settings)
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port


async def test_an_idle_partial_request_is_closed(tmp_path, demo_db):
    runner, port = await serve(tmp_path, demo_db, http_header_timeout=1.0)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(PARTIAL)
        await writer.drain()

        assert await closed_by_server(reader)  # open for 400 s before
        writer.close()
    finally:
        await runner.cleanup()


async def test_a_body_sent_too_slowly_gets_408_and_the_connection_is_closed(tmp_path, demo_db):
    runner, port = await serve(tmp_path, demo_db, http_body_timeout=1.0)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        body = b'{"email": "buyer@livemall.example", "password": "livemall-demo"}'
        writer.write(b"POST /api/auth/login HTTP/1.1\r\nHost: example\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body[:10])
        await writer.drain()  # the rest never comes

        reply = await asyncio.wait_for(reader.read(), 10)  # read to the close
        assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
        assert b'"slow_body"' in reply
        writer.close()
    finally:
        await runner.cleanup()


async def test_a_body_sent_in_time_is_still_read_by_its_handler(tmp_path, demo_db):
    runner, port = await serve(tmp_path, demo_db, http_body_timeout=5.0)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        body = '{"email": "buyer@livemall.example", "password": "livemall-demo"}'.encode()
        writer.write(b"POST /api/auth/login HTTP/1.1\r\nHost: example\r\nContent-Type: application/json\r\n"
                     b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:10])
        await writer.drain()
        await asyncio.sleep(0.3)  # slow, but within the deadline
        writer.write(body[10:])
        await writer.drain()

        reply = await asyncio.wait_for(reader.read(), 10)
        assert reply.startswith(b"HTTP/1.1 200"), reply[:300]
        assert b'"token"' in reply
        writer.close()
    finally:
        await runner.cleanup()


async def test_connections_beyond_the_nodes_cap_are_closed_at_once(tmp_path, demo_db):
    runner, port = await serve(tmp_path, demo_db, http_max_connections=5, http_header_timeout=60.0)
    held = []
    try:
        for _ in range(12):
            held.append(await asyncio.open_connection("127.0.0.1", port))
            held[-1][1].write(PARTIAL)
        closed = await asyncio.gather(*(closed_by_server(reader, 2) for reader, _ in held))

        assert closed.count(False) == 5  # the first five are still open, waiting for their heads
        assert all(closed[5:])
    finally:
        for _, writer in held:
            writer.close()
        await runner.cleanup()


async def test_a_request_still_works_after_the_cap_frees_up(tmp_path, demo_db):
    import aiohttp

    runner, port = await serve(tmp_path, demo_db, http_max_connections=2)
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(5):
                async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                    assert response.status == 200
    finally:
        await runner.cleanup()


async def test_one_address_holds_at_most_its_share_of_connections(tmp_path, demo_db):
    # Loopback is not a trusted proxy here, so it is a client like any other.
    runner, port = await serve(tmp_path, demo_db, trusted_proxies=(), http_connections_per_address=3,
                               http_header_timeout=60.0)
    held = []
    try:
        for _ in range(8):
            held.append(await asyncio.open_connection("127.0.0.1", port))
            held[-1][1].write(PARTIAL)
        closed = await asyncio.gather(*(closed_by_server(reader, 2) for reader, _ in held))

        assert closed.count(False) == 3
    finally:
        for _, writer in held:
            writer.close()
        await runner.cleanup()


def test_the_nginx_template_caps_connections_and_slow_clients():
    template = (Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "livemall.conf.template").read_text()

    assert "limit_conn_zone $binary_remote_addr" in template and "limit_conn livemall_conn" in template
    for directive in ("client_header_timeout", "client_body_timeout", "keepalive_timeout", "send_timeout"):
        assert f"\n{directive} " in template, directive
