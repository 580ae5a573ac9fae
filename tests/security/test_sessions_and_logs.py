"""Session cookies behind an HTTPS proxy, what reaches the logs, and who may read a
co-view room's description."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator

import pytest

from tests.conftest import bearer, login, test_settings
from web import logs

MEMBER = "member@livemall.example"


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """What the project's JSON log handler writes (the handler `livemall serve` installs)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    handler.addFilter(logs._RequestIdFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


async def test_session_cookie_is_secure_behind_an_https_proxy(client):
    response = await client.post("/api/auth/login", json={"email": MEMBER, "password": "livemall-demo"},
                                 headers={"X-Forwarded-Proto": "https"})
    cookie = response.cookies["livemall_session"]
    assert cookie["secure"] and cookie["httponly"] and cookie["samesite"] == "Lax"


async def test_session_cookie_is_secure_when_the_public_url_is_https(aiohttp_client, demo_db, tmp_path):
    from web.app import create_app

    app = create_app(test_settings(demo_db, recordings_dir=tmp_path / "r", public_url="https://live.example.org"))
    client = await aiohttp_client(app)
    response = await client.post("/api/auth/login", json={"email": MEMBER, "password": "livemall-demo"})
    assert response.cookies["livemall_session"]["secure"]


async def test_a_malformed_request_never_logs_the_session_cookie(client, log_lines):
    token = await login(client, MEMBER)
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(f"GET /api/me HTTP/1.1\r\nHost: x\r\nCookie: livemall_session={token}\x01\r\n\r\n".encode())
    await writer.drain()
    assert (await reader.read(4096)).startswith(b"HTTP/1.0 400")  # aiohttp logs the parse error, then answers
    writer.close()
    assert "Error handling request" in log_lines.getvalue()
    assert token not in log_lines.getvalue()


async def test_access_log_lines_never_carry_an_invite_code(aiohttp_client, demo_db, tmp_path, log_lines):
    from web.app import create_app

    app = create_app(test_settings(demo_db, recordings_dir=tmp_path / "r"))
    client = await aiohttp_client(app, server_kwargs={"access_log_class": logs.AccessLogger})
    token = await login(client, MEMBER)
    code = (await (await client.post("/api/coview", json={"show_id": 1}, headers=bearer(token))).json())["code"]
    for path in (f"/coview/{code}", f"/api/coview/{code}", f"/api/coview/{code}/orders"):
        assert (await client.get(path, headers=bearer(token))).status == 200
    lines = log_lines.getvalue()
    assert "/api/coview/***/orders" in lines
    assert code not in lines


async def test_a_co_view_room_is_described_only_to_signed_in_users(client):
    token = await login(client, MEMBER)
    code = (await (await client.post("/api/coview", json={"show_id": 1}, headers=bearer(token))).json())["code"]
    client.session.cookie_jar.clear()  # signed out: neither the cookie nor a bearer token
    response = await client.get(f"/api/coview/{code}")
    assert response.status == 401
