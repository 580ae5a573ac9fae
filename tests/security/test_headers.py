"""Issue 14, item 21: no HSTS anywhere, no X-Content-Type-Options on JSON and static
files, a CSP only on HTML pages, and `connect-src` allowing any ws:/wss: host."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import test_settings


def connect_src(csp: str) -> list[str]:
    return re.search(r"connect-src ([^;]*)", csp).group(1).split()


@pytest.mark.parametrize("path", ["/api/shows", "/api/shows/999999", "/static/js/watch.js", "/healthz", "/nowhere"])
async def test_every_response_says_nosniff_and_carries_a_policy(client, path):
    response = await client.get(path)

    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" in response.headers


async def test_json_may_load_nothing(client):
    response = await client.get("/api/shows")

    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")


async def test_pages_connect_only_to_their_own_origin(client):
    response = await client.get("/")

    sources = connect_src(response.headers["Content-Security-Policy"])
    assert "ws:" not in sources and "wss:" not in sources
    host = f"{client.server.host}:{client.server.port}"
    assert sources == ["'self'", f"http://{host}", f"ws://{host}"]


async def test_pages_on_an_https_public_url_connect_to_it_and_send_hsts(aiohttp_client, demo_db, tmp_path: Path):
    from web.app import create_app

    app = create_app(test_settings(demo_db, recordings_dir=tmp_path / "rec", public_url="https://shop.example"))
    client = await aiohttp_client(app)

    page = await client.get("/")
    data = await client.get("/api/shows")

    assert connect_src(page.headers["Content-Security-Policy"]) == ["'self'", "https://shop.example", "wss://shop.example"]
    for response in (page, data):
        assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")


async def test_no_hsts_without_an_https_public_url(client):
    response = await client.get("/")

    assert "Strict-Transport-Security" not in response.headers


async def test_a_forged_host_cannot_splice_a_directive_into_the_policy(client):
    response = await client.get("/", headers={"Host": "evil.example; script-src *"})

    assert "script-src *" not in response.headers["Content-Security-Policy"]


def test_the_nginx_template_serves_tls_from_certificates_by_path():
    template = (Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "livemall.conf.template").read_text()

    assert "listen ${LIVEMALL_TLS_PORT} ssl;" in template
    assert "ssl_certificate ${LIVEMALL_TLS_CERT};" in template and "ssl_certificate_key ${LIVEMALL_TLS_KEY};" in template
    assert "add_header Strict-Transport-Security $livemall_hsts always;" in template
