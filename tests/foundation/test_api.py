"""Catalog and schedule routes as DESIGN.md specifies them, and the 422s of bad bodies."""

from __future__ import annotations

from tests.conftest import bearer, login


async def test_committees_lists_all_fourteen_with_korean_and_english_names(client):
    response = await client.get("/api/committees")
    committees = await response.json()
    assert len(committees) == 14
    food = next(c for c in committees if c["code"] == "food")
    assert food == {"code": "food", "name_ko": "식품", "name_en": "Food & Beverages"}
    assert "charset=utf-8" in response.headers["Content-Type"]


async def test_products_filter_by_committee_and_search_text(client):
    medical = await (await client.get("/api/products", params={"committee": "medical"})).json()
    assert medical and all(p["committee"] == "medical" for p in medical)
    found = await (await client.get("/api/products", params={"q": "green tea"})).json()
    assert [p["name"] for p in found] == ["Jeju Organic Green Tea 100g"]
    assert found[0]["price"] == 1500 and found[0]["currency"] == "USD" and found[0]["moq"] == 1


async def test_search_treats_percent_as_text_not_wildcard(client):
    found = await (await client.get("/api/products", params={"q": "%"})).json()
    assert found == []


async def test_package_detail_lists_its_items(client):
    products = await (await client.get("/api/products", params={"q": "Package"})).json()
    detail = await (await client.get(f"/api/products/{products[0]['id']}")).json()
    assert detail["kind"] == "industrial"
    assert {i["name"] for i in detail["package_items"]} == {"Mask Production Line", "Melt-blown Filter Machine"}


async def test_unknown_product_is_404_json(client):
    response = await client.get("/api/products/999999")
    assert response.status == 404
    assert (await response.json())["error"] == "not_found"


async def test_demo_show_is_listed_with_its_segments(client):
    shows = await (await client.get("/api/shows")).json()
    assert len(shows) == 1
    show = shows[0]
    assert show["status"] == "scheduled"
    assert [s["committee"]["code"] for s in show["segments"]] == ["food", "cosmetics", "medical"]


async def test_host_schedules_a_show_with_segments(client):
    token = await login(client, "host@livemall.example")
    body = {
        "title": "수산물 특집 Live",
        "scheduled_at": "2026-12-01T19:00:00+09:00",
        "segments": [{"title": "Anchovies", "committee": "seafood", "product_ids": [3]}],
    }
    response = await client.post("/api/shows", json=body, headers=bearer(token))
    assert response.status == 201, await response.text()
    show = await response.json()
    assert show["title"] == "수산물 특집 Live"
    assert show["scheduled_at"] == "2026-12-01T10:00:00+00:00"  # stored and shown in UTC
    assert show["segments"][0]["product_ids"] == [3]

    detail = await (await client.get(f"/api/shows/{show['id']}")).json()
    assert detail["pin"] is None and detail["viewers"] == 0

    added = await client.post(
        f"/api/shows/{show['id']}/segments", json={"title": "Laver", "committee": "seafood"}, headers=bearer(token)
    )
    assert added.status == 201
    assert (await added.json())["position"] == 2


async def test_another_host_cannot_add_segments_to_my_show(client):
    admin = await login(client, "admin@livemall.example")
    other = await client.post(
        "/api/auth/register",
        json={"email": "h2@example.com", "password": "h2-password-77", "name": "h2", "country": "KR"},
    )
    assert other.status == 201
    # Only the CLI makes hosts; a buyer is refused by role before ownership is even checked.
    token = await login(client, "h2@example.com", "h2-password-77")
    response = await client.post("/api/shows/1/segments", json={"title": "x", "committee": "food"}, headers=bearer(token))
    assert response.status == 403
    assert admin  # the admin may, as the next test shows


async def test_admin_schedules_for_a_named_host(client):
    token = await login(client, "admin@livemall.example")
    body = {"title": "Admin-made", "scheduled_at": "2026-12-01T10:00:00Z", "host_id": 2}
    response = await client.post("/api/shows", json=body, headers=bearer(token))
    assert response.status == 201
    assert (await response.json())["host"]["id"] == 2


async def test_show_body_validation_errors_are_422_with_fields(client):
    token = await login(client, "host@livemall.example")
    cases = [
        {"title": "x", "scheduled_at": "2026-12-01T10:00:00Z", "surprise": 1},  # unknown field
        {"title": 5, "scheduled_at": "2026-12-01T10:00:00Z"},  # wrong type
        {"title": "x" * 201, "scheduled_at": "2026-12-01T10:00:00Z"},  # too long
        {"title": "x", "scheduled_at": "2026-12-01T10:00:00"},  # no time zone
        {"title": "x", "scheduled_at": "2026-12-01T10:00:00Z", "segments": [{"title": "s", "committee": "nope"}]},
    ]
    for body in cases:
        response = await client.post("/api/shows", json=body, headers=bearer(token))
        assert response.status == 422, body
        error = await response.json()
        assert set(error) >= {"error", "message"}
    first = await client.post("/api/shows", json=cases[0], headers=bearer(token))
    assert (await first.json())["fields"][0]["field"] == "surprise"


async def test_non_json_body_is_400(client):
    response = await client.post("/api/auth/login", data="email=a", headers={"Content-Type": "text/plain"})
    assert response.status == 400
    broken = await client.post("/api/auth/login", data="{", headers={"Content-Type": "application/json"})
    assert broken.status == 400


async def test_oversized_body_is_413(client):
    response = await client.post(
        "/api/auth/login", data="x" * (300 * 1024), headers={"Content-Type": "application/json"}
    )
    assert response.status == 413
