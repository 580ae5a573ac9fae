"""Per-client HTTP rate limits on the real app: 429 with a JSON error and Retry-After,
per address for sign-in and media, per signed-in user for other writes."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import bearer, login, test_settings
from web.app import create_app


@pytest.fixture
async def strict_client(aiohttp_client, demo_db: str, tmp_path: Path):
    settings = test_settings(
        demo_db,
        recordings_dir=tmp_path / "recordings",
        rate_limit_auth="3/minute",
        rate_limit_media="2/minute",
        rate_limit_write="4/minute",
    )
    return await aiohttp_client(create_app(settings))


def from_address(address: str) -> dict[str, str]:
    # The test client connects from loopback, a trusted proxy by default, so the
    # forwarded address is the client's.
    return {"X-Forwarded-For": address}


async def bad_login(client, address: str):
    return await client.post(
        "/api/auth/login",
        json={"email": "buyer@livemall.example", "password": "wrong-password"},
        headers=from_address(address),
    )


async def test_sign_in_attempts_beyond_the_limit_get_429_with_retry_after(strict_client):
    for _ in range(3):
        assert (await bad_login(strict_client, "203.0.113.5")).status == 401
    refused = await bad_login(strict_client, "203.0.113.5")
    assert refused.status == 429
    body = await refused.json()
    assert body["error"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert body["retry_after"] == int(refused.headers["Retry-After"])


async def test_another_address_keeps_its_own_allowance(strict_client):
    for _ in range(4):
        await bad_login(strict_client, "203.0.113.5")
    assert (await bad_login(strict_client, "198.51.100.9")).status == 401


async def test_an_untrusted_peer_cannot_choose_its_address(aiohttp_client, demo_db: str, tmp_path: Path):
    settings = test_settings(demo_db, recordings_dir=tmp_path / "r", rate_limit_auth="2/minute", trusted_proxies=())
    client = await aiohttp_client(create_app(settings))
    statuses = [(await bad_login(client, f"192.0.2.{n}")).status for n in range(3)]
    assert statuses == [401, 401, 429]


async def test_writes_are_limited_per_signed_in_user(strict_client):
    buyer = await login(strict_client, "buyer@livemall.example")
    member = await login(strict_client, "member@livemall.example")
    statuses = []
    for n in range(5):
        response = await strict_client.post(
            "/api/orders", json={"product_id": 999_999, "quantity": 1},
            headers={**bearer(buyer), "Idempotency-Key": f"k{n}"},
        )
        statuses.append(response.status)
    assert statuses == [422, 422, 422, 422, 429]
    # The same address, another user: not refused.
    response = await strict_client.post(
        "/api/orders", json={"product_id": 999_999, "quantity": 1},
        headers={**bearer(member), "Idempotency-Key": "m1"},
    )
    assert response.status == 422


async def test_whep_offers_are_limited_per_address_and_counted(strict_client):
    statuses = [
        (await strict_client.post("/whep/1", data="v=0", headers={"Content-Type": "application/sdp",
                                                                  **from_address("203.0.113.7")})).status
        for _ in range(3)
    ]
    assert statuses == [409, 409, 429]  # the show is not live; the third is not even looked at
    text = await (await strict_client.get("/metrics")).text()
    samples = {
        sample.labels.get("rule"): sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "livemall_http_rate_limited"
        for sample in family.samples
        if sample.name.endswith("_total")
    }
    assert samples.get("media", 0) >= 1


async def test_reads_are_not_limited_by_the_app(strict_client):
    for _ in range(10):
        assert (await strict_client.get("/api/shows/1")).status == 200


async def test_a_trusted_proxy_network_is_looked_through(aiohttp_client, demo_db: str, tmp_path: Path):
    # nginx in another container: its address is in a network, not a fixed loopback one.
    settings = test_settings(
        demo_db, recordings_dir=tmp_path / "r", rate_limit_auth="2/minute", trusted_proxies=("127.0.0.0/8",)
    )
    client = await aiohttp_client(create_app(settings))
    # Two distinct clients behind two hops of the proxy network each keep their allowance.
    for address in ("198.51.100.1", "198.51.100.2"):
        statuses = [
            (await client.post("/api/auth/login", json={"email": "x@example.org", "password": "wrong-pw"},
                               headers={"X-Forwarded-For": f"{address}, 127.0.0.9"})).status
            for _ in range(2)
        ]
        assert statuses == [401, 401]


async def test_only_a_node_with_the_shared_secret_can_claim_to_forward(strict_client):
    # Nodes forwarding WHEP to a show's origin are not limited again; a client that
    # merely claims to be a node is.
    from web.media_origin import FORWARDED, forward_proof

    def offer(forwarded: str):
        return strict_client.post("/whep/1", data="v=0", headers={
            "Content-Type": "application/sdp", FORWARDED: forwarded, **from_address("203.0.113.8")})

    forged = [(await offer("1")).status for _ in range(3)]
    assert forged == [409, 409, 429]
    stale = forward_proof("test-secret", "POST", "/whep/1", now=1_000_000_000)
    assert (await offer(stale)).status == 429
    wrong_key = forward_proof("another-secret", "POST", "/whep/1")
    assert (await offer(wrong_key)).status == 429
    genuine = [(await offer(forward_proof("test-secret", "POST", "/whep/1"))).status for _ in range(5)]
    assert genuine == [409] * 5


async def test_a_forwarding_proof_with_non_ascii_digits_is_refused_not_a_500(strict_client):
    from web.media_origin import FORWARDED

    response = await strict_client.post("/whep/1", data="v=0", headers={
        "Content-Type": "application/sdp", FORWARDED: "²³.abc", **from_address("203.0.113.9")})
    # Not a proof: the offer is treated as any client's (the show is not live here).
    assert response.status == 409
