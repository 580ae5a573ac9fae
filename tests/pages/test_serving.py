"""How the pages are served: language negotiation, safe redirects, security headers,
the token only on the host's studio, and the vendored Socket.IO client."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from tests.conftest import login
from web.pages import negotiate, safe_next

STATIC = Path(__file__).resolve().parents[2] / "web" / "static"


@pytest.mark.parametrize(
    ("header", "locale"),
    [
        ("ko-KR,ko;q=0.9,en-US;q=0.8", "ko"),
        ("en-GB,en;q=0.9,ko;q=0.5", "en"),
        ("ru-RU,ru;q=0.9,ko;q=0.7,en;q=0.3", "ru"),
        ("zh-CN", "zh-Hans"),
        ("vi-VN,vi;q=0.9", "vi"),
        ("fr-FR,fr;q=0.9,vi;q=0.5,ko;q=0.4", "vi"),
        ("ko;q=0, en;q=0.1", "en"),
        ("", "en"),
        ("ko;q=bogus", "en"),
    ],
)
def test_accept_language_picks_the_best_supported_language(header, locale):
    assert negotiate(header) == locale


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/shows/1?x=2", "/shows/1?x=2"),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("/a\r\nSet-Cookie: x=1", "/"),
        (None, "/"),
    ],
)
def test_next_is_only_ever_a_local_path(target, expected):
    assert safe_next(target) == expected


async def test_pages_forbid_inline_script_and_framing(client):
    response = await client.get("/")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    html = await response.text()
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert 'type="application/json"' in tag or ("src=" in tag and 'type="module"' in tag), tag


async def test_language_comes_from_accept_language_then_the_cookie(client):
    korean = await (await client.get("/login", headers={"Accept-Language": "ko-KR,ko;q=0.9"})).text()
    assert '<html lang="ko">' in korean and "<h1>로그인</h1>" in korean
    switched = await client.get("/lang/en?next=/login", headers={"Accept-Language": "ko"}, allow_redirects=False)
    assert switched.status == 303 and switched.headers["Location"] == "/login"
    english = await (await client.get("/login", headers={"Accept-Language": "ko"})).text()
    assert "<h1>Sign in</h1>" in english


async def test_only_the_hosts_studio_page_carries_a_token(client):
    token = await login(client, "host@livemall.example")
    studio = await client.get("/studio/1")
    assert token in await studio.text()
    assert studio.headers["Cache-Control"] == "no-store"
    watch = await client.get("/shows/1")
    assert token not in await watch.text()


async def test_an_expired_session_cookie_just_means_signed_out(client):
    client.session.cookie_jar.update_cookies({"livemall_session": "forged.token"})
    response = await client.get("/shows/1")
    assert response.status == 200
    assert "Sign in" in await response.text()


async def test_unknown_static_file_is_404(client):
    assert (await client.get("/static/js/nope.js")).status == 404
    assert (await client.get("/static/../pages.py")).status in (403, 404)


def test_vendored_socketio_client_is_the_published_file():
    readme = (STATIC / "vendor" / "README.md").read_text()
    expected = re.search(r"sha256 of `socket.io.esm.min.js`: `([0-9a-f]{64})`", readme).group(1)
    digest = hashlib.sha256((STATIC / "vendor" / "socket.io.esm.min.js").read_bytes()).hexdigest()
    assert digest == expected
    assert "Socket.IO v4.8.4" in (STATIC / "vendor" / "socket.io.esm.min.js").read_text()[:200]
    assert "MIT License" in (STATIC / "vendor" / "socket.io-client.LICENSE").read_text()


def test_page_scripts_never_use_inner_html():
    offenders = [p.name for p in (STATIC / "js").glob("*.js") if re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write", p.read_text())]
    assert offenders == []
