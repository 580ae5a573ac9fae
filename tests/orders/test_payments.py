"""Payment providers, signed webhooks and the order lifecycle's legal transitions."""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import func, select

from orders.models import PaymentEvent
from tests.orders.conftest import BUYER, GREEN_TEA, open_shop


async def start_sandbox(shop, order_id: int) -> str:
    await shop.ship_to(order_id)
    response = await shop.post(f"/api/orders/{order_id}/pay", "buyer", {"provider": "sandbox"})
    assert response.status == 200, await response.text()
    return (await response.json())["payment_ref"]


def succeeded(ref: str, amount: int, currency: str = "USD", event_id: str | None = None) -> dict:
    return {"id": event_id or f"evt_{uuid.uuid4().hex}", "type": "payment.succeeded",
            "data": {"payment_ref": ref, "amount": amount, "currency": currency}}


# --- invoice -----------------------------------------------------------------------------

async def test_invoice_checkout_gives_a_transfer_reference(shop):
    order = await shop.placed()
    await shop.ship_to(order["id"])
    response = await shop.post(f"/api/orders/{order['id']}/pay", "buyer", {"provider": "invoice"})
    body = await response.json()
    assert body["provider"] == "invoice" and body["payment_ref"] == f"INV-{order['id']:08d}"
    assert (body["amount"], body["currency"]) == (order["total"], "USD")


async def test_admin_confirms_an_invoice_payment_and_the_buyer_hears_it(shop):
    order = await shop.placed()
    response = await shop.post(f"/api/orders/{order['id']}/confirm-payment", "admin")
    assert response.status == 200
    paid = await response.json()
    assert paid["status"] == "paid" and paid["payment_provider"] == "invoice" and paid["paid_at"]
    assert ("user", BUYER, "order", paid) in shop.events.sent


@pytest.mark.parametrize("who", ["buyer", "host", "member"])
async def test_only_an_admin_confirms_payment(shop, who):
    order = await shop.placed()
    assert (await shop.post(f"/api/orders/{order['id']}/confirm-payment", who)).status == 403


async def test_unknown_provider_is_422(shop):
    order = await shop.placed()
    response = await shop.post(f"/api/orders/{order['id']}/pay", "buyer", {"provider": "bitcoin"})
    assert response.status == 422


# --- lifecycle ---------------------------------------------------------------------------

async def test_paid_order_is_shipped_then_delivered(shop):
    order = await shop.placed()
    for action, status in (("confirm-payment", "paid"), ("ship", "shipped"), ("deliver", "delivered")):
        response = await shop.post(f"/api/orders/{order['id']}/{action}", "admin")
        assert response.status == 200 and (await response.json())["status"] == status


@pytest.mark.parametrize("steps, illegal", [
    ([], "ship"),
    ([], "deliver"),
    ([], "refund"),
    (["confirm-payment"], "deliver"),
    (["confirm-payment"], "confirm-payment"),
    (["confirm-payment", "ship", "deliver"], "ship"),
    (["confirm-payment", "refund"], "ship"),
])
async def test_illegal_transitions_are_409(shop, steps, illegal):
    order = await shop.placed()
    for step in steps:
        assert (await shop.post(f"/api/orders/{order['id']}/{step}", "admin")).status == 200
    response = await shop.post(f"/api/orders/{order['id']}/{illegal}", "admin")
    assert response.status == 409
    assert (await response.json())["error"] == "illegal_transition"


async def test_buyer_cancels_a_pending_order_and_its_stock_returns_to_the_show(shop):
    order = await shop.placed(quantity=5, show_id=1)
    response = await shop.post(f"/api/orders/{order['id']}/cancel", "buyer")
    assert (await response.json())["status"] == "cancelled"
    assert await shop.stock(GREEN_TEA) == 120
    assert ("show", 1, "stock", {"product_id": GREEN_TEA, "stock": 120}) in shop.events.sent


async def test_a_paid_order_cannot_be_cancelled_by_the_buyer(shop):
    order = await shop.placed()
    await shop.post(f"/api/orders/{order['id']}/confirm-payment", "admin")
    response = await shop.post(f"/api/orders/{order['id']}/cancel", "buyer")
    assert response.status == 409


async def test_nobody_else_cancels_my_order(shop):
    order = await shop.placed("buyer")
    assert (await shop.post(f"/api/orders/{order['id']}/cancel", "member")).status == 404


async def test_refund_before_shipping_returns_stock_after_shipping_does_not(shop):
    kept = await shop.placed(quantity=2)
    shipped = await shop.placed(quantity=3)
    for order in (kept, shipped):
        await shop.post(f"/api/orders/{order['id']}/confirm-payment", "admin")
    await shop.post(f"/api/orders/{shipped['id']}/ship", "admin")
    assert await shop.stock(GREEN_TEA) == 115
    await shop.post(f"/api/orders/{kept['id']}/refund", "admin")
    await shop.post(f"/api/orders/{shipped['id']}/refund", "admin")
    assert await shop.stock(GREEN_TEA) == 117


# --- sandbox webhook ---------------------------------------------------------------------

async def test_signed_webhook_pays_the_order(any_shop):
    shop = any_shop
    order = await shop.placed(quantity=2)
    ref = await start_sandbox(shop, order["id"])
    response = await shop.webhook(succeeded(ref, order["total"]))
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["duplicate"] is False and body["order"]["status"] == "paid"
    assert ("user", BUYER, "order", body["order"]) in shop.events.sent


async def test_replayed_webhook_event_is_acknowledged_and_changes_nothing(any_shop):
    shop = any_shop
    order = await shop.placed()
    ref = await start_sandbox(shop, order["id"])
    event = succeeded(ref, order["total"])
    assert (await shop.webhook(event)).status == 200
    await shop.post(f"/api/orders/{order['id']}/refund", "admin")
    replay = await shop.webhook(event)
    assert replay.status == 200
    assert (await replay.json())["duplicate"] is True
    detail = await (await shop.get(f"/api/orders/{order['id']}", "buyer")).json()
    assert detail["status"] == "refunded"
    async with shop.db.session() as session:
        assert await session.scalar(select(func.count(PaymentEvent.id))) == 1


async def test_webhook_with_a_wrong_signature_is_401_and_pays_nothing(shop):
    order = await shop.placed()
    ref = await start_sandbox(shop, order["id"])
    response = await shop.webhook(succeeded(ref, order["total"]), secret="not-the-secret")
    assert response.status == 401
    assert (await response.json())["error"] == "bad_signature"
    assert (await (await shop.get(f"/api/orders/{order['id']}", "buyer")).json())["status"] == "pending"


@pytest.mark.parametrize("header", ["", "v1=abc", "t=123", "t=abc,v1=00", "garbage"])
async def test_webhook_with_a_missing_or_malformed_signature_is_401(shop, header):
    order = await shop.placed()
    ref = await start_sandbox(shop, order["id"])
    response = await shop.webhook(succeeded(ref, order["total"]), signature=header or " ")
    assert response.status == 401


@pytest.mark.parametrize("skew", [-301, 301])
async def test_webhook_signed_outside_the_tolerance_window_is_401(shop, skew):
    order = await shop.placed()
    ref = await start_sandbox(shop, order["id"])
    response = await shop.webhook(succeeded(ref, order["total"]), at=time.time() + skew)
    assert response.status == 401


async def test_webhook_body_changed_after_signing_is_401(shop):
    import json

    from orders.payments import SIGNATURE_HEADER, sign
    from tests.orders.conftest import WEBHOOK_SECRET

    order = await shop.placed()
    ref = await start_sandbox(shop, order["id"])
    signed = json.dumps(succeeded(ref, 1)).encode()
    header = sign(WEBHOOK_SECRET, signed, int(time.time()))
    tampered = signed.replace(b'"amount": 1', f'"amount": {order["total"]}'.encode())
    response = await shop.client.post("/api/payments/sandbox/webhook", data=tampered,
                                      headers={SIGNATURE_HEADER: header})
    assert response.status == 401


async def test_webhook_for_the_wrong_amount_is_422_and_not_recorded(shop):
    order = await shop.placed()
    ref = await start_sandbox(shop, order["id"])
    response = await shop.webhook(succeeded(ref, order["total"] - 1))
    assert response.status == 422
    assert (await response.json())["error"] == "amount_mismatch"
    async with shop.db.session() as session:
        assert await session.scalar(select(func.count(PaymentEvent.id))) == 0


async def test_webhook_for_an_unknown_payment_or_malformed_event_is_422(shop):
    assert (await shop.webhook(succeeded("sbx_nope", 100))).status == 422
    assert (await shop.webhook({"id": "evt_1", "type": "payment.refunded", "data": {}})).status == 422
    assert (await shop.webhook({"hello": "world"})).status == 422


async def test_webhook_for_an_expired_order_is_409_illegal_transition(shop):
    from sqlalchemy import update

    from orders.models import Order, OrderStatus

    order = await shop.placed()
    ref = await start_sandbox(shop, order["id"])
    async with shop.db.transaction() as session:
        await session.execute(update(Order).where(Order.id == order["id"]).values(status=OrderStatus.expired))
    response = await shop.webhook(succeeded(ref, order["total"]))
    assert response.status == 409
    assert (await response.json())["error"] == "illegal_transition"


async def test_sandbox_test_card_pays_through_the_signed_webhook_path(shop):
    order = await shop.placed()
    ref = await start_sandbox(shop, order["id"])
    response = await shop.post("/api/payments/sandbox/charge", "buyer",
                               {"payment_ref": ref, "card_number": "4242 4242 4242 4242"})
    assert response.status == 200
    assert (await response.json())["order"]["status"] == "paid"


async def test_sandbox_declined_card_is_409_and_leaves_the_order_pending(shop):
    order = await shop.placed()
    ref = await start_sandbox(shop, order["id"])
    response = await shop.post("/api/payments/sandbox/charge", "buyer",
                               {"payment_ref": ref, "card_number": "4000000000000002"})
    assert response.status == 409
    assert (await response.json())["error"] == "card_declined"
    assert (await (await shop.get(f"/api/orders/{order['id']}", "buyer")).json())["status"] == "pending"


async def test_without_a_webhook_secret_the_sandbox_is_refused(aiohttp_client, sqlite_url, tmp_path):
    shop = await open_shop(aiohttp_client, sqlite_url, tmp_path, payment_webhook_secret="")
    order = await shop.placed()
    assert (await shop.post(f"/api/orders/{order['id']}/pay", "buyer", {"provider": "sandbox"})).status == 422
    response = await shop.webhook(succeeded("sbx_x", 1))
    assert response.status == 404
    assert (await response.json())["error"] == "unknown_provider"
