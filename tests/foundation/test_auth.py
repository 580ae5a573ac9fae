"""Registration, sign-in and the token rules: 401 for bad credentials or tokens, 403 for roles."""

from __future__ import annotations

import time

from tests.conftest import bearer, login
from web.appkeys import TOKENS


async def test_registered_buyer_can_sign_in_with_utf8_name(client):
    body = {"email": "Olga@Example.ru", "password": "correct horse", "name": "Ольга Смирнова", "country": "ru"}
    response = await client.post("/api/auth/register", json=body)
    assert response.status == 201
    user = (await response.json())["user"]
    assert user["name"] == "Ольга Смирнова" and user["role"] == "buyer" and user["country"] == "RU"

    token = await login(client, "olga@example.ru", "correct horse")
    me = await client.get("/api/me", headers=bearer(token))
    assert (await me.json())["user"]["email"] == "olga@example.ru"


async def test_login_sets_an_httponly_session_cookie_that_authenticates(client):
    response = await client.post(
        "/api/auth/login", json={"email": "buyer@livemall.example", "password": "livemall-demo"}
    )
    assert response.status == 200
    cookie = response.cookies["livemall_session"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    me = await client.get("/api/me")  # the client's cookie jar sends it back
    assert me.status == 200


async def test_registering_an_existing_email_is_a_conflict(client):
    body = {"email": "buyer@livemall.example", "password": "not-in-any-list-1", "name": "x", "country": "KR"}
    response = await client.post("/api/auth/register", json=body)
    assert response.status == 409
    assert (await response.json())["error"] == "email_taken"


async def test_nobody_registers_as_host_or_admin(client):
    body = {"email": "sneaky@example.com", "password": "not-in-any-list-1", "name": "x", "country": "KR", "role": "admin"}
    response = await client.post("/api/auth/register", json=body)
    assert response.status == 422


async def test_bad_password_is_401(client):
    response = await client.post("/api/auth/login", json={"email": "buyer@livemall.example", "password": "nope"})
    assert response.status == 401
    assert await response.json() == {"error": "unauthorized", "message": "wrong e-mail or password"}


async def test_unknown_email_is_401_with_the_same_message(client):
    response = await client.post("/api/auth/login", json={"email": "ghost@example.com", "password": "nope"})
    assert response.status == 401
    assert (await response.json())["message"] == "wrong e-mail or password"


async def test_expired_token_is_401(client):
    codec = client.app[TOKENS]
    token = codec.issue(1, now=time.time() - codec.ttl - 5)
    response = await client.get("/api/me", headers=bearer(token))
    assert response.status == 401
    assert (await response.json())["message"] == "token expired"


async def test_forged_token_is_401(client):
    token = await login(client, "buyer@livemall.example")
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    response = await client.get("/api/me", headers=bearer(forged))
    assert response.status == 401


async def test_malformed_authorization_header_is_401(client):
    response = await client.get("/api/me", headers={"Authorization": "Basic Zm9vOmJhcg=="})
    assert response.status == 401


async def test_anonymous_cannot_schedule_a_show(client):
    response = await client.post("/api/shows", json={"title": "x", "scheduled_at": "2026-12-01T10:00:00Z"})
    assert response.status == 401


async def test_buyer_cannot_schedule_a_show(client):
    token = await login(client, "buyer@livemall.example")
    response = await client.post(
        "/api/shows", json={"title": "x", "scheduled_at": "2026-12-01T10:00:00Z"}, headers=bearer(token)
    )
    assert response.status == 403
    assert (await response.json())["error"] == "forbidden"
