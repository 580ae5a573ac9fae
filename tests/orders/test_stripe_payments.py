"""The Stripe provider through the real `stripe` library, against a local Stripe-shaped
server (tests/orders/stripe_server.py), with webhooks signed by the real scheme:
`Stripe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{t}.{payload}")>`."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from orders.models import Order, PaymentEvent, Product
from orders.payments import offered
from orders.stripe_payments import CurrencyNotSupported, StripeMisconfigured, from_stripe, to_stripe
from tests.conftest import free_port, test_settings
from tests.orders.conftest import BUYER, GREEN_TEA, open_shop
from tests.orders.stripe_server import StripeServer
from web.api_orders import PROVIDERS
from web.settings import load_settings

SECRET_KEY = "sk_test_livemall"
WEBHOOK_SECRET = "whsec_test_livemall"
PUBLIC_URL = "http://shop.test"


@pytest.fixture
async def stripe_api(aiohttp_server):
    server = StripeServer(SECRET_KEY)
    running = await aiohttp_server(server.app())
    server.base_url = str(running.make_url("")).rstrip("/")
    yield server
    server.release()  # a hanging request ends before the server stops


async def stripe_shop_on(aiohttp_client, database_url: str, tmp_path: Path, api_base: str, **overrides):
    settings = dict(stripe_secret_key=SECRET_KEY, stripe_webhook_secret=WEBHOOK_SECRET, stripe_api_base=api_base,
                    public_url=PUBLIC_URL, stripe_timeout=1.0, stripe_max_network_retries=1)
    settings.update(overrides)
    return await open_shop(aiohttp_client, database_url, tmp_path, **settings)


@pytest.fixture
async def shop(aiohttp_client, sqlite_url, tmp_path, stripe_api):
    return await stripe_shop_on(aiohttp_client, sqlite_url, tmp_path, stripe_api.base_url)


@pytest.fixture
async def any_shop(aiohttp_client, database_url, tmp_path, stripe_api):
    return await stripe_shop_on(aiohttp_client, database_url, tmp_path, stripe_api.base_url)


def signature(payload: bytes, secret: str = WEBHOOK_SECRET, at: float | None = None) -> str:
    stamp = int(time.time() if at is None else at)
    mac = hmac.new(secret.encode(), f"{stamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={mac}"


async def deliver(shop, event: dict, *, secret: str = WEBHOOK_SECRET, at: float | None = None,
                  header: str | None = None):
    raw = json.dumps(event).encode()
    headers = {"Content-Type": "application/json", "Stripe-Signature": header or signature(raw, secret, at)}
    return await shop.client.post("/api/payments/stripe/webhook", data=raw, headers=headers)


async def placed(shop, **body) -> dict:
    """An order with a ship-to address, so payment may start (orders/checkout.py)."""
    order = await shop.placed(**body)
    await shop.ship_to(order["id"])
    return order


async def pay(shop, order_id: int):
    return await shop.post(f"/api/orders/{order_id}/pay", "buyer", {"provider": "stripe"})


async def paid_by_stripe(shop, order_id: int) -> dict:
    response = await pay(shop, order_id)
    assert response.status == 200, await response.text()
    return await response.json()


async def order_row(shop, order_id: int) -> Order:
    async with shop.db.session() as session:
        return await session.get(Order, order_id)


async def price_in(shop, currency: str, price: int, product_id: int = GREEN_TEA) -> None:
    async with shop.db.transaction() as session:
        await session.execute(update(Product).where(Product.id == product_id).values(currency=currency, price=price))


# --- checkout ------------------------------------------------------------------------------

async def test_paying_by_stripe_creates_a_checkout_session_that_leads_back_to_the_order(shop, stripe_api):
    order = await placed(shop, quantity=2)

    body = await paid_by_stripe(shop, order["id"])

    session = stripe_api.sessions[body["payment_ref"]]
    assert body["provider"] == "stripe" and body["redirect_url"] == session["url"]
    assert (body["amount"], body["currency"]) == (order["total"], "USD") == (3000, "USD")
    assert (session["amount_total"], session["currency"]) == (3000, "usd")
    assert session["client_reference_id"] == str(order["id"]) and session["metadata"] == {"order_id": str(order["id"])}
    assert session["success_url"].startswith(f"{PUBLIC_URL}/orders/{order['id']}?payment=success")
    assert session["cancel_url"] == f"{PUBLIC_URL}/orders/{order['id']}?payment=cancelled"
    row = await order_row(shop, order["id"])
    assert (row.status.value, row.payment_provider, row.payment_ref) == ("pending", "stripe", session["id"])


async def test_every_create_carries_an_idempotency_key_of_the_order(shop, stripe_api):
    first, second = await placed(shop), await placed(shop)

    await paid_by_stripe(shop, first["id"])
    await paid_by_stripe(shop, second["id"])

    keys = [c["key"] for c in stripe_api.creates]
    assert len(keys) == 2 and all(keys) and keys[0] != keys[1]
    assert all(f"order-{o['id']}-" in k for o, k in zip((first, second), keys))


@pytest.mark.parametrize("currency, price, sent", [
    ("KRW", 32000, 32000),  # ₩32,000: KRW has no minor unit, stored and sent as whole won
    ("JPY", 500, 500),  # ¥500 likewise
    ("USD", 1500, 1500),  # $15.00 in cents
    ("HUF", 990, 99000),  # 990 Ft: whole forints here, two-decimal in Stripe's API
    ("KWD", 5120, 5120),  # 5.120 KD: three decimals, last digit 0
])
async def test_amounts_reach_stripe_in_its_units(shop, stripe_api, currency, price, sent):
    await price_in(shop, currency, price)
    order = await placed(shop)

    body = await paid_by_stripe(shop, order["id"])

    session = stripe_api.sessions[body["payment_ref"]]
    assert (session["amount_total"], session["currency"]) == (sent, currency.lower())
    assert (body["amount"], body["currency"]) == (price, currency)


async def test_a_krw_order_paid_through_the_webhook_matches_its_whole_won_total(shop, stripe_api):
    await price_in(shop, "KRW", 32000)
    order = await placed(shop, quantity=3)
    ref = (await paid_by_stripe(shop, order["id"]))["payment_ref"]

    response = await deliver(shop, stripe_api.event("checkout.session.completed", stripe_api.pay(ref)))

    assert response.status == 200, await response.text()
    paid = (await response.json())["order"]
    assert (paid["status"], paid["total"], paid["currency"]) == ("paid", 96000, "KRW")


async def test_stripe_charges_the_checked_out_total_shipping_included(shop, stripe_api):
    order = await placed(shop)
    async with shop.db.transaction() as session:  # as a checkout with 5.00 shipping leaves it
        await session.execute(update(Order).where(Order.id == order["id"]).values(
            shipping_amount=500, total=order["total"] + 500))

    ref = (await paid_by_stripe(shop, order["id"]))["payment_ref"]
    response = await deliver(shop, stripe_api.event("checkout.session.completed", stripe_api.pay(ref)))

    assert stripe_api.sessions[ref]["amount_total"] == order["total"] + 500 == 2000
    assert response.status == 200 and (await response.json())["order"]["status"] == "paid"


async def test_an_amount_stripe_cannot_take_exactly_is_422_before_stripe_is_asked(shop, stripe_api):
    await price_in(shop, "KWD", 5125)  # 5.125 KD: Stripe wants the last digit 0, and we never round money
    order = await placed(shop)

    response = await pay(shop, order["id"])

    assert response.status == 422
    assert (await response.json())["error"] == "currency_not_supported" and stripe_api.creates == []
    assert (await order_row(shop, order["id"])).payment_provider is None


async def test_a_currency_stripe_refuses_is_422_with_stripes_reason(shop, stripe_api):
    await price_in(shop, "XTS", 1500)  # the ISO code reserved for testing: the server refuses it as Stripe would
    order = await placed(shop)

    response = await pay(shop, order["id"])

    body = await response.json()
    assert response.status == 422 and body["error"] == "payment_refused" and body["field"] == "currency"
    assert "Invalid currency: xts" in body["message"]
    assert (await order_row(shop, order["id"])).payment_provider is None


@pytest.mark.parametrize("data_object", ["cs_test_1", ["cs_test_1"], None])
async def test_a_signed_event_whose_object_is_not_a_session_is_422(shop, stripe_api, data_object):
    event = {**stripe_api.event("checkout.session.completed", {}), "data": {"object": data_object}}

    response = await deliver(shop, event)

    assert response.status == 422


async def test_paying_again_answers_the_same_open_session(shop, stripe_api):
    order = await placed(shop)

    first = await paid_by_stripe(shop, order["id"])
    again = await paid_by_stripe(shop, order["id"])

    assert again["payment_ref"] == first["payment_ref"] and again["redirect_url"] == first["redirect_url"]
    assert len(stripe_api.sessions) == 1 and stripe_api.retrieves == [first["payment_ref"]]


async def test_an_expired_session_is_replaced_under_a_new_key(shop, stripe_api):
    order = await placed(shop)
    first = await paid_by_stripe(shop, order["id"])
    stripe_api.expire(first["payment_ref"])

    again = await paid_by_stripe(shop, order["id"])

    assert again["payment_ref"] != first["payment_ref"] and again["redirect_url"]
    keys = [c["key"] for c in stripe_api.creates]
    assert len(set(keys)) == 2 and keys[1].endswith(first["payment_ref"])
    assert (await order_row(shop, order["id"])).payment_ref == again["payment_ref"]


async def test_a_completed_session_is_not_replaced_while_stripe_confirms_it(shop, stripe_api):
    order = await placed(shop)
    first = await paid_by_stripe(shop, order["id"])
    stripe_api.pay(first["payment_ref"])  # the buyer paid; the webhook is still on its way

    again = await paid_by_stripe(shop, order["id"])

    assert again["payment_ref"] == first["payment_ref"] and again["redirect_url"] is None
    assert again["session_status"] == "complete" and len(stripe_api.creates) == 1


async def test_the_stripe_server_answers_a_repeated_idempotency_key_with_the_same_session(shop, stripe_api):
    # The property the provider relies on when the library retries after a lost answer.
    import aiohttp

    form = {"mode": "payment", "line_items[0][quantity]": "1", "line_items[0][price_data][currency]": "usd",
            "line_items[0][price_data][unit_amount]": "1500"}
    headers = {"Authorization": f"Bearer {SECRET_KEY}", "Idempotency-Key": "same-key"}
    async with aiohttp.ClientSession() as http:
        url = f"{stripe_api.base_url}/v1/checkout/sessions"
        first = await (await http.post(url, data=form, headers=headers)).json()
        replay = await http.post(url, data=form, headers=headers)
        other = await http.post(url, data={**form, "line_items[0][price_data][unit_amount]": "1600"}, headers=headers)
        assert replay.headers["Idempotent-Replayed"] == "true" and (await replay.json())["id"] == first["id"]
        assert other.status == 400 and (await other.json())["error"]["type"] == "idempotency_error"
    assert len(stripe_api.sessions) == 1


# --- the processor failing -------------------------------------------------------------------

@pytest.mark.parametrize("failure, status, code", [
    ("500", 502, "payment_processor_error"),
    ("timeout", 503, "payment_processor_unavailable"),
])
async def test_a_failing_processor_leaves_the_order_pending_with_a_clear_error(shop, stripe_api, failure, status,
                                                                               code):
    order = await placed(shop)
    if failure == "500":
        stripe_api.fail_next = 2  # the first call and the library's one retry
    else:
        stripe_api.hang = True

    response = await pay(shop, order["id"])

    body = await response.json()
    assert response.status == status and body["error"] == code and "pending" in body["message"]
    row = await order_row(shop, order["id"])
    assert (row.status.value, row.payment_provider, row.payment_ref) == ("pending", None, None)


async def test_a_processor_that_is_down_is_503_and_the_order_stays_pending(aiohttp_client, sqlite_url, tmp_path):
    nobody = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    shop = await stripe_shop_on(aiohttp_client, sqlite_url, tmp_path, nobody, stripe_max_network_retries=0)
    order = await placed(shop)

    response = await pay(shop, order["id"])

    assert response.status == 503 and (await response.json())["error"] == "payment_processor_unavailable"
    assert (await order_row(shop, order["id"])).status.value == "pending"


async def test_after_a_processor_error_paying_again_makes_one_session(shop, stripe_api):
    order = await placed(shop)
    stripe_api.fail_next = 2
    assert (await pay(shop, order["id"])).status == 502

    body = await paid_by_stripe(shop, order["id"])

    assert list(stripe_api.sessions) == [body["payment_ref"]]
    assert len({c["key"] for c in stripe_api.creates}) == 1  # the retry used the same key


async def test_the_library_retries_a_500_with_the_same_key_and_succeeds(shop, stripe_api):
    order = await placed(shop)
    stripe_api.fail_next = 1

    body = await paid_by_stripe(shop, order["id"])

    assert list(stripe_api.sessions) == [body["payment_ref"]]


# --- webhooks ------------------------------------------------------------------------------

async def test_a_signed_checkout_completed_event_pays_the_order_and_the_buyer_hears_it(any_shop, stripe_api):
    order = await placed(any_shop)
    ref = (await paid_by_stripe(any_shop, order["id"]))["payment_ref"]

    response = await deliver(any_shop, stripe_api.event("checkout.session.completed", stripe_api.pay(ref)))

    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["duplicate"] is False and body["order"]["status"] == "paid" and body["order"]["paid_at"]
    assert ("user", BUYER, "order", body["order"]) in any_shop.events.sent


async def test_a_replayed_event_pays_once(any_shop, stripe_api):
    order = await placed(any_shop)
    ref = (await paid_by_stripe(any_shop, order["id"]))["payment_ref"]
    event = stripe_api.event("checkout.session.completed", stripe_api.pay(ref))
    first = await (await deliver(any_shop, event)).json()
    sent = len(any_shop.events.sent)

    replay = await deliver(any_shop, event)

    assert replay.status == 200 and await replay.json() == {"ok": True, "duplicate": True,
                                                            "event": event["id"], "order": None}
    assert len(any_shop.events.sent) == sent
    mine = await (await any_shop.get(f"/api/orders/{order['id']}", "buyer")).json()
    assert mine["paid_at"] == first["order"]["paid_at"]
    async with any_shop.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(PaymentEvent)) == 1


async def test_a_webhook_signed_with_another_secret_is_401_and_pays_nothing(shop, stripe_api):
    order = await placed(shop)
    ref = (await paid_by_stripe(shop, order["id"]))["payment_ref"]

    response = await deliver(shop, stripe_api.event("checkout.session.completed", stripe_api.pay(ref)),
                             secret="whsec_someone_else")

    assert response.status == 401 and (await response.json())["error"] == "bad_signature"
    assert (await order_row(shop, order["id"])).status.value == "pending"


async def test_a_late_webhook_outside_the_tolerance_is_401(shop, stripe_api):
    order = await placed(shop)
    ref = (await paid_by_stripe(shop, order["id"]))["payment_ref"]

    response = await deliver(shop, stripe_api.event("checkout.session.completed", stripe_api.pay(ref)),
                             at=time.time() - 301 - 60)  # tolerance 300 s

    assert response.status == 401 and "tolerance" in (await response.json())["message"].lower()
    assert (await order_row(shop, order["id"])).status.value == "pending"


@pytest.mark.parametrize("header", ["", "t=123", "v1=abc", "t=notanumber,v1=abc", "garbage"])
async def test_a_missing_or_malformed_signature_is_401(shop, stripe_api, header):
    event = stripe_api.event("checkout.session.completed", {"id": "cs_x", "amount_total": 1, "currency": "usd"})
    raw = json.dumps(event).encode()
    headers = {"Content-Type": "application/json", **({"Stripe-Signature": header} if header else {})}

    response = await shop.client.post("/api/payments/stripe/webhook", data=raw, headers=headers)

    assert response.status == 401 and (await response.json())["error"] == "bad_signature"


async def test_a_body_changed_after_signing_is_401(shop, stripe_api):
    order = await placed(shop)
    ref = (await paid_by_stripe(shop, order["id"]))["payment_ref"]
    raw = json.dumps(stripe_api.event("checkout.session.completed", stripe_api.pay(ref))).encode()
    header = signature(raw)

    response = await shop.client.post("/api/payments/stripe/webhook", data=raw.replace(b"1500", b"1"),
                                      headers={"Stripe-Signature": header})

    assert response.status == 401


async def test_a_signature_by_a_rotated_secret_among_several_is_accepted(shop, stripe_api):
    order = await placed(shop)
    ref = (await paid_by_stripe(shop, order["id"]))["payment_ref"]
    raw = json.dumps(stripe_api.event("checkout.session.completed", stripe_api.pay(ref))).encode()
    old, new = signature(raw, "whsec_old"), signature(raw)

    response = await shop.client.post("/api/payments/stripe/webhook", data=raw,
                                      headers={"Stripe-Signature": f"{old},v1={new.rpartition('v1=')[2]}"})

    assert response.status == 200


async def test_a_webhook_for_an_unknown_session_is_422_not_500(shop, stripe_api):
    unknown = {"id": "cs_test_nobody", "object": "checkout.session", "amount_total": 1500, "currency": "usd",
               "payment_status": "paid", "status": "complete"}

    response = await deliver(shop, stripe_api.event("checkout.session.completed", unknown))

    body = await response.json()
    assert response.status == 422 and body["field"] == "payment_ref"


async def test_a_second_payment_event_for_a_paid_order_is_409_and_changes_nothing(shop, stripe_api):
    order = await placed(shop)
    ref = (await paid_by_stripe(shop, order["id"]))["payment_ref"]
    session = stripe_api.pay(ref)
    assert (await deliver(shop, stripe_api.event("checkout.session.completed", session))).status == 200

    again = await deliver(shop, stripe_api.event("checkout.session.async_payment_succeeded", session))

    body = await again.json()
    assert again.status == 409 and body["error"] == "illegal_transition" and body["current_status"] == "paid"


async def test_a_signed_event_for_the_wrong_amount_is_422_and_not_recorded(shop, stripe_api):
    order = await placed(shop)
    ref = (await paid_by_stripe(shop, order["id"]))["payment_ref"]
    session = {**stripe_api.pay(ref), "amount_total": 1}

    response = await deliver(shop, stripe_api.event("checkout.session.completed", session))

    assert response.status == 422 and (await response.json())["error"] == "amount_mismatch"
    async with shop.db.session() as db_session:
        assert await db_session.scalar(select(func.count()).select_from(PaymentEvent)) == 0


async def test_events_this_shop_does_not_act_on_are_acknowledged_and_change_nothing(shop, stripe_api):
    order = await placed(shop)
    ref = (await paid_by_stripe(shop, order["id"]))["payment_ref"]
    intent = {"id": "pi_test_1", "object": "payment_intent", "amount": 1500, "currency": "usd",
              "metadata": {"order_id": str(order["id"])}, "status": "succeeded"}

    response = await deliver(shop, stripe_api.event("payment_intent.succeeded", intent))
    unpaid = await deliver(shop, stripe_api.event("checkout.session.completed",
                                                  stripe_api.pay(ref, payment_status="unpaid")))

    for answer in (response, unpaid):
        assert answer.status == 200 and (await answer.json())["ignored"] is True
    assert (await order_row(shop, order["id"])).status.value == "pending"


async def test_a_delayed_payment_that_settles_later_pays_the_order(shop, stripe_api):
    order = await placed(shop)
    ref = (await paid_by_stripe(shop, order["id"]))["payment_ref"]
    await deliver(shop, stripe_api.event("checkout.session.completed", stripe_api.pay(ref, payment_status="unpaid")))

    response = await deliver(shop, stripe_api.event("checkout.session.async_payment_succeeded", stripe_api.pay(ref)))

    assert response.status == 200 and (await response.json())["order"]["status"] == "paid"


async def test_an_expired_session_event_is_recorded_and_the_order_stays_pending(shop, stripe_api):
    order = await placed(shop)
    ref = (await paid_by_stripe(shop, order["id"]))["payment_ref"]

    response = await deliver(shop, stripe_api.event("checkout.session.expired", stripe_api.expire(ref)))

    assert response.status == 200 and (await response.json())["order"] is None
    assert (await order_row(shop, order["id"])).status.value == "pending"


async def test_a_signed_body_that_is_not_an_event_is_422(shop):
    raw = b'{"id": "evt_1", "type": "checkout.session.completed"}'

    response = await shop.client.post("/api/payments/stripe/webhook", data=raw,
                                      headers={"Stripe-Signature": signature(raw)})

    assert response.status == 422


# --- configuration -----------------------------------------------------------------------------

async def test_stripe_is_offered_with_its_keys(shop, stripe_api):
    order = await placed(shop)

    response = await shop.get(f"/api/orders/{order['id']}/checkout", "buyer")

    assert "stripe" in (await response.json())["payment_providers"]


async def test_without_keys_stripe_is_not_offered(aiohttp_client, sqlite_url, tmp_path):
    shop = await open_shop(aiohttp_client, sqlite_url, tmp_path)
    order = await placed(shop)

    summary = await (await shop.get(f"/api/orders/{order['id']}/checkout", "buyer")).json()
    paying = await pay(shop, order["id"])
    hook = await deliver(shop, {"id": "evt_1", "type": "checkout.session.completed", "data": {"object": {}}})

    assert "stripe" not in summary["payment_providers"] and "invoice" in summary["payment_providers"]
    assert paying.status == 422 and (await paying.json())["field"] == "provider"
    assert hook.status == 404 and (await hook.json())["error"] == "unknown_provider"


async def test_stripe_is_not_offered_for_a_currency_it_cannot_take(shop, stripe_api):
    in_service = shop.app[PROVIDERS]

    assert "stripe" in offered(in_service, "KRW") and "stripe" in offered(in_service, "USD")
    # LYD: three decimals in the shop, two in Stripe's API; we never round money.
    assert offered(in_service, "LYD") == ["invoice", "sandbox"]


@pytest.mark.parametrize("overrides", [
    dict(stripe_secret_key=SECRET_KEY),
    dict(stripe_webhook_secret=WEBHOOK_SECRET),
    dict(stripe_secret_key=SECRET_KEY, stripe_webhook_secret=WEBHOOK_SECRET, public_url=""),
])
def test_half_a_stripe_configuration_refuses_to_start(sqlite_url, tmp_path, overrides):
    from web.app import create_app

    with pytest.raises(StripeMisconfigured):
        create_app(test_settings(sqlite_url, recordings_dir=tmp_path / "r", **overrides))


def test_stripe_settings_come_from_livemall_variables():
    settings = load_settings(environ={"LIVEMALL_STRIPE_SECRET_KEY": SECRET_KEY,
                                      "LIVEMALL_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
                                      "LIVEMALL_STRIPE_API_BASE": "http://127.0.0.1:9", "LIVEMALL_STRIPE_TIMEOUT": "2.5"})
    assert (settings.stripe_secret_key, settings.stripe_webhook_secret) == (SECRET_KEY, WEBHOOK_SECRET)
    assert (settings.stripe_api_base, settings.stripe_timeout) == ("http://127.0.0.1:9", 2.5)
    assert SECRET_KEY not in repr(settings) and WEBHOOK_SECRET not in repr(settings)


# --- units ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("minor, currency, amount", [
    (32000, "KRW", 32000), (500, "JPY", 500), (120000, "VND", 120000), (1500, "USD", 1500),
    (990, "HUF", 99000), (1000, "ISK", 100000), (5120, "KWD", 5120), (193000, "RUB", 193000),
])
def test_minor_units_convert_to_stripe_amounts_and_back_exactly(minor, currency, amount):
    assert to_stripe(minor, currency) == amount and from_stripe(amount, currency) == minor


@pytest.mark.parametrize("minor, currency", [(5125, "KWD"), (5125, "LYD")])
def test_an_amount_stripe_cannot_take_exactly_is_refused_not_rounded(minor, currency):
    with pytest.raises(CurrencyNotSupported):
        to_stripe(minor, currency)


async def test_stripe_webhooks_are_not_rate_limited_like_a_client(aiohttp_client, sqlite_url, tmp_path, stripe_api):
    shop = await stripe_shop_on(aiohttp_client, sqlite_url, tmp_path, stripe_api.base_url,
                                rate_limit_write="1/minute")
    intent = {"id": "pi_test_1", "object": "payment_intent", "amount": 1500, "currency": "usd"}

    answers = [await deliver(shop, stripe_api.event("payment_intent.created", intent)) for _ in range(3)]

    assert [a.status for a in answers] == [200, 200, 200]


# --- closing the card page of an order that closed -----------------------------------------

async def until(predicate, seconds: float = 10) -> None:
    """For what the app does in the background after answering (closing a card page)."""
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "not done in time"
        await asyncio.sleep(0.02)


async def test_cancelling_an_order_closes_its_stripe_page(shop, stripe_api):
    order = await placed(shop)
    ref = (await paid_by_stripe(shop, order["id"]))["payment_ref"]

    response = await shop.post(f"/api/orders/{order['id']}/cancel", "buyer")

    assert response.status == 200, await response.text()
    await until(lambda: stripe_api.sessions[ref]["status"] == "expired")
    assert stripe_api.expires == [ref]


async def test_an_order_that_expires_unpaid_closes_its_stripe_page(aiohttp_client, sqlite_url, tmp_path, stripe_api):
    shop = await stripe_shop_on(aiohttp_client, sqlite_url, tmp_path, stripe_api.base_url, order_sweep_interval=0.05)
    order = await placed(shop)
    ref = (await paid_by_stripe(shop, order["id"]))["payment_ref"]

    async with shop.db.transaction() as session:  # its hold runs out
        await session.execute(update(Order).where(Order.id == order["id"]).values(
            expires_at=datetime.now(timezone.utc) - timedelta(seconds=1)))

    await until(lambda: stripe_api.sessions[ref]["status"] == "expired")
    assert (await order_row(shop, order["id"])).status.value == "expired"


async def test_a_page_paid_before_its_order_was_cancelled_stays_paid_and_its_webhook_is_refused(shop, stripe_api):
    # The buyer paid on Stripe's page while cancelling in another tab: Stripe has the
    # money, the order is cancelled. The page cannot be expired; the payment's webhook
    # meets a closed order and is refused (the admin refunds it in Stripe).
    order = await placed(shop)
    ref = (await paid_by_stripe(shop, order["id"]))["payment_ref"]
    completed = stripe_api.pay(ref)

    assert (await shop.post(f"/api/orders/{order['id']}/cancel", "buyer")).status == 200
    await until(lambda: stripe_api.expires == [ref])
    response = await deliver(shop, stripe_api.event("checkout.session.completed", completed))

    assert stripe_api.sessions[ref]["status"] == "complete"
    assert response.status == 409, await response.text()
    assert (await order_row(shop, order["id"])).status.value == "cancelled"
