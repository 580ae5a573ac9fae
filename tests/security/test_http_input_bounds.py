"""Bad input over HTTP gets a clear JSON error, never a 500: ids out of the database's
range, digits that are not ASCII, JSON nested or numbered past what Python parses, and
NUL characters (which PostgreSQL cannot store)."""

from __future__ import annotations

import pytest

from orders.payments import SIGNATURE_HEADER
from tests.conftest import bearer, login, test_settings

BUYER = "buyer@livemall.example"
MEMBER = "member@livemall.example"
ADMIN = "admin@livemall.example"
BEYOND_INT32 = 2**31  # ids are PostgreSQL INTEGER columns


@pytest.mark.parametrize("path", ["/api/shows/²", "/api/products/١", "/shows/²", "/studio/²"])
async def test_an_id_of_non_ascii_digits_is_not_found(client, path):
    token = await login(client, ADMIN)
    response = await client.get(path, headers=bearer(token))
    assert response.status == 404


@pytest.mark.parametrize("path", [f"/api/orders/{BEYOND_INT32}", f"/api/shows/{BEYOND_INT32}",
                                  f"/api/quotes/{BEYOND_INT32}", f"/shows/{BEYOND_INT32}"])
async def test_an_id_beyond_the_database_range_is_not_found_on_postgresql(pg_client, path):
    token = await login(pg_client, BUYER)
    response = await pg_client.get(path, headers=bearer(token))
    assert response.status == 404


async def test_a_co_view_room_for_a_huge_show_id_is_422(client):
    token = await login(client, MEMBER)
    response = await client.post("/api/coview", json={"show_id": 2**70}, headers=bearer(token))
    assert response.status == 422
    assert (await response.json())["error"] == "invalid"


@pytest.mark.parametrize("extra", [{"exhibition_id": 2**70}, {"host_id": 2**70},
                                   {"segments": [{"title": "x", "committee": "food", "product_ids": [2**70]}]}],
                         ids=["exhibition_id", "host_id", "product_ids"])
async def test_scheduling_a_show_with_a_huge_id_is_422(client, extra):
    token = await login(client, ADMIN)
    body = {"title": "Late show", "scheduled_at": "2030-01-01T10:00:00Z", **extra}
    response = await client.post("/api/shows", json=body, headers=bearer(token))
    assert response.status == 422


@pytest.mark.parametrize("raw", [b"[" * 100_000, b'{"show_id": ' + b"1" * 5000 + b"}"],
                         ids=["nested_100k_deep", "int_of_5000_digits"])
async def test_json_python_cannot_parse_is_400(client, raw):
    token = await login(client, MEMBER)
    response = await client.post("/api/coview", data=raw,
                                 headers={**bearer(token), "Content-Type": "application/json"})
    assert response.status == 400
    assert (await response.json())["error"] == "bad_request"


async def test_a_nul_character_in_a_body_is_422_on_postgresql(pg_client):
    body = {"email": "nul@example.org", "password": "long enough", "name": "a\u0000b", "country": "KR"}
    response = await pg_client.post("/api/auth/register", json=body)
    assert response.status == 422
    assert (await response.json())["error"] == "invalid"


async def test_a_nul_character_in_a_search_is_400_on_postgresql(pg_client):
    response = await pg_client.get("/api/products", params={"q": "tea\u0000"})
    assert response.status == 400


async def test_a_webhook_timestamp_of_non_ascii_digits_is_401(aiohttp_client, demo_db, tmp_path):
    from web.app import create_app

    app = create_app(test_settings(demo_db, recordings_dir=tmp_path / "r", payment_sandbox=True,
                                      payment_webhook_secret="s"))
    client = await aiohttp_client(app)
    response = await client.post("/api/payments/sandbox/webhook", data=b"{}",
                                 headers={SIGNATURE_HEADER: "t=²,v1=00"})
    assert response.status == 401
    assert (await response.json())["error"] == "bad_signature"
