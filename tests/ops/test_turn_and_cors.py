"""TURN REST credentials and CORS on the WHIP/WHEP paths."""

from __future__ import annotations

import base64
import hashlib
import hmac

from tests.conftest import test_settings
from web.turn import ice_servers_for, mint


def test_turn_credentials_follow_coturns_rest_scheme_and_expire():
    server = mint("s3cret", ("turn:127.0.0.1:3478?transport=udp",), "abc", ttl=600, now=1_000_000)
    assert server.username == "1000600:abc"
    expected = base64.b64encode(hmac.new(b"s3cret", b"1000600:abc", hashlib.sha1).digest()).decode()
    assert server.credential == expected
    assert "s3cret" not in server.link_headers()[0]
    assert server.link_headers()[0].startswith('<turn:127.0.0.1:3478?transport=udp>; rel="ice-server"; username=')


def test_no_turn_server_without_a_secret():
    servers = ice_servers_for("x", stun_urls=("stun:a:3478",), turn_urls=("turn:a:3478",), turn_secret="", turn_ttl=60)
    assert [s.as_json() for s in servers] == [{"urls": ["stun:a:3478"]}]


async def test_cors_preflight_allows_only_configured_origins(aiohttp_client, demo_db):
    from web.app import create_app

    app = create_app(test_settings(demo_db, cors_origins=("https://player.example",)))
    client = await aiohttp_client(app)
    allowed = await client.options("/whep/1", headers={"Origin": "https://player.example"})
    assert allowed.status == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://player.example"
    assert "Location" in allowed.headers["Access-Control-Expose-Headers"]
    assert "Link" in allowed.headers["Access-Control-Expose-Headers"]
    other = await client.options("/whep/1", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    api = await client.get("/api/committees", headers={"Origin": "https://player.example"})
    assert "Access-Control-Allow-Origin" not in api.headers  # only WHIP/WHEP are cross-origin


async def test_no_cors_headers_unless_configured(client):
    response = await client.options("/whep/1", headers={"Origin": "https://player.example"})
    assert "Access-Control-Allow-Origin" not in response.headers
