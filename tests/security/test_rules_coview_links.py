"""Issue 14, item 19: `POST /api/coview` with `Host: evil.example` returned an invite
link on evil.example. Invite links use the configured public_url, and never a host the
node is not configured to serve."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import bearer, login, test_settings

MEMBER = "member@livemall.example"
EVIL = "evil.example"


async def open_room(client, **headers: str) -> dict:
    token = await login(client, MEMBER)
    response = await client.post("/api/coview", json={"show_id": 1}, headers={**bearer(token), **headers})
    assert response.status == 201, await response.text()
    return await response.json()


async def test_a_forged_host_header_never_reaches_the_invite_link(client):
    room = await open_room(client, Host=EVIL)
    assert EVIL not in room["url"]
    assert room["url"] == f"/coview/{room['code']}"  # no public_url: a relative link the page completes


async def test_a_forged_forwarded_host_never_reaches_the_invite_link(client):
    room = await open_room(client, **{"X-Forwarded-Host": EVIL, "Forwarded": f"host={EVIL}"})
    assert EVIL not in room["url"]


async def test_with_a_public_url_the_link_is_on_it_whatever_the_host_header(aiohttp_client, demo_db: str,
                                                                             tmp_path: Path):
    from web.app import create_app

    app = create_app(test_settings(demo_db, recordings_dir=tmp_path / "r", public_url="https://live.example.org/"))
    client = await aiohttp_client(app)
    room = await open_room(client, Host=EVIL)
    assert room["url"] == f"https://live.example.org/coview/{room['code']}"


async def test_the_room_page_and_description_use_the_same_rule(client):
    room = await open_room(client)
    token = await login(client, MEMBER)
    described = await client.get(f"/api/coview/{room['code']}", headers={**bearer(token), "Host": EVIL})
    assert EVIL not in (await described.json())["url"]
    page = await client.get(f"/coview/{room['code']}", headers={"Host": EVIL})
    assert EVIL not in await page.text()


async def test_on_one_machine_a_loopback_address_still_gets_a_whole_link(client):
    room = await open_room(client)  # the test client speaks to 127.0.0.1
    assert room["url"] == f"http://127.0.0.1:{client.port}/coview/{room['code']}"
