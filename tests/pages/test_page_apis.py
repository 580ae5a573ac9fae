"""The JSON routes the pages added: a co-view room's credited orders
(web/api_coview.py) and an admin changing a user's role (web/api_admin.py)."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from sqlalchemy import select

from orders import shows
from orders.models import Product, Role, Show, User
from tests.conftest import bearer, login, record_viewers
from web.appkeys import DB


async def _live_with_pin(client, product_name: str) -> int:
    async with client.app[DB].transaction() as session:
        await shows.mark_live(session, 1, datetime.now(timezone.utc), None)
        product = await session.scalar(select(Product).where(Product.name == product_name))
        (await session.get(Show, 1)).pinned_product_id = product.id
    await record_viewers(client.app[DB], 1, 1, 2, 3, 4)  # the demo's users watched it
    return product.id


async def _room(client, token: str) -> str:
    response = await client.post("/api/coview", json={"show_id": 1}, headers=bearer(token))
    assert response.status == 201, await response.text()
    return (await response.json())["code"]


async def _order(client, token: str, product_id: int, quantity: int, code: str | None) -> dict:
    body = {"product_id": product_id, "quantity": quantity, "show_id": 1}
    if code:
        body["coview"] = code
    headers = {**bearer(token), "Idempotency-Key": uuid.uuid4().hex}
    response = await client.post("/api/orders", json=body, headers=headers)
    assert response.status == 201, await response.text()
    return await response.json()


async def test_room_owner_lists_the_orders_credited_from_the_room_with_the_commission_once_paid(client):
    mask = await _live_with_pin(client, "KF94 Mask (box of 50)")
    member, buyer, admin = [await login(client, f"{who}@livemall.example") for who in ("member", "buyer", "admin")]
    code = await _room(client, member)
    first = await _order(client, buyer, mask, 2, code)
    second = await _order(client, buyer, mask, 1, code)
    await _order(client, buyer, mask, 5, None)  # not from the room: not the member's
    paid = await client.post(f"/api/orders/{first['id']}/confirm-payment", headers=bearer(admin))
    assert paid.status == 200, await paid.text()

    response = await client.get(f"/api/coview/{code}/orders", headers=bearer(member))

    assert response.status == 200
    orders = (await response.json())["orders"]
    assert [(o["id"], o["quantity"], o["total"], o["currency"], o["status"]) for o in orders] == [
        (second["id"], 1, 1800, "USD", "pending"),
        (first["id"], 2, 3600, "USD", "paid"),
    ]
    assert orders[0]["product"]["name"] == "KF94 Mask (box of 50)"
    # Medical committee: 3 % of 36.00 USD, once paid; nothing yet for the pending one.
    assert [o["commission"] for o in orders] == [None, 108]


async def test_only_the_room_owner_or_an_admin_sees_its_orders(client):
    await _live_with_pin(client, "KF94 Mask (box of 50)")
    member = await login(client, "member@livemall.example")
    code = await _room(client, member)
    buyer = await client.get(f"/api/coview/{code}/orders", headers=bearer(await login(client, "buyer@livemall.example")))
    admin = await client.get(f"/api/coview/{code}/orders", headers=bearer(await login(client, "admin@livemall.example")))
    client.session.cookie_jar.clear()  # signing in above left a session cookie
    anonymous = await client.get(f"/api/coview/{code}/orders")
    assert (buyer.status, (await buyer.json())["error"]) == (403, "forbidden")
    assert anonymous.status == 401
    assert (admin.status, (await admin.json())["orders"]) == (200, [])


async def test_orders_of_an_unknown_room_are_404(client):
    member = await login(client, "member@livemall.example")
    response = await client.get("/api/coview/nosuchroom123/orders", headers=bearer(member))
    assert response.status == 404


async def _user_id(client, email: str) -> int:
    async with client.app[DB].session() as session:
        return await session.scalar(select(User.id).where(User.email == email))


async def test_admin_makes_a_buyer_a_host_who_may_then_schedule_shows(client):
    admin = await login(client, "admin@livemall.example")
    buyer_id = await _user_id(client, "buyer@livemall.example")
    buyer = await login(client, "buyer@livemall.example")
    show = {"title": "Buyer's own show", "scheduled_at": "2031-01-01T10:00:00Z"}
    assert (await client.post("/api/shows", json=show, headers=bearer(buyer))).status == 403

    response = await client.patch(f"/api/admin/users/{buyer_id}", json={"role": "host"}, headers=bearer(admin))

    assert response.status == 200
    assert (await response.json())["role"] == "host"
    assert (await client.post("/api/shows", json=show, headers=bearer(buyer))).status == 201


async def test_role_change_refuses_an_unknown_role_naming_the_field(client):
    admin = await login(client, "admin@livemall.example")
    buyer_id = await _user_id(client, "buyer@livemall.example")
    response = await client.patch(f"/api/admin/users/{buyer_id}", json={"role": "owner"}, headers=bearer(admin))
    body = await response.json()
    assert (response.status, body["error"], [f["field"] for f in body["fields"]]) == (422, "invalid", ["role"])


async def test_an_admin_cannot_change_their_own_role(client):
    admin = await login(client, "admin@livemall.example")
    admin_id = await _user_id(client, "admin@livemall.example")
    response = await client.patch(f"/api/admin/users/{admin_id}", json={"role": "buyer"}, headers=bearer(admin))
    body = await response.json()
    assert (response.status, body["field"]) == (422, "role")
    async with client.app[DB].session() as session:
        assert (await session.get(User, admin_id)).role is Role.admin


async def test_only_an_admin_changes_roles(client):
    host = await login(client, "host@livemall.example")
    buyer_id = await _user_id(client, "buyer@livemall.example")
    response = await client.patch(f"/api/admin/users/{buyer_id}", json={"role": "admin"}, headers=bearer(host))
    assert response.status == 403
    missing = await client.patch("/api/admin/users/9999", json={"role": "host"},
                                 headers=bearer(await login(client, "admin@livemall.example")))
    assert missing.status == 404
