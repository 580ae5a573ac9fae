"""From Buy to a paid order through the card path: 200 buyers at once (issue 15).

Each buyer, signed in with a ship-to address in their book, is released together with
the others and goes through the whole HTTP path of the real app (aiohttp, the order
desk, checkout, the mail queue, PostgreSQL):

    POST /api/orders                      (Buy)
    POST /api/orders/{id}/checkout        (ship to the address: shipping and total)
    POST /api/orders/{id}/pay  stripe     (a Checkout Session, through the `stripe` library)
    ... Stripe completes the session and sends checkout.session.completed ...
    POST /api/payments/stripe/webhook     (signed as Stripe signs: the order is paid)

The card processor is tests/orders/stripe_server.py (a local server shaped like Stripe's
API), so Stripe's own latency is not in the figure: the time is the shop's. A buyer's
time runs from the release to the webhook's answer that paid their order.

Baseline, in the same run: the same buyers through the invoice path (Buy, checkout,
pay by invoice, the admin's confirm-payment), the shop's path without a card processor.
The ratio says what the card path costs over it.

    python bench/buy_to_paid.py [--buyers 200] [--runs 3]

Needs PostgreSQL (its unix socket, as the tests use); creates and drops its own database.
Everything (buyers, shop, Stripe stand-in) shares this process and the machine's cores:
the figures are a floor for one node, not a capacity.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402
from aiohttp import web  # noqa: E402
from sqlalchemy import select, update  # noqa: E402

from bench.harness import percentile  # noqa: E402
from orders.db import Database  # noqa: E402
from orders.demo import load_demo  # noqa: E402
from orders.models import Order, OrderStatus, Product  # noqa: E402
from tests.orders.stripe_server import StripeServer  # noqa: E402
from web.settings import Settings  # noqa: E402

PG_HOST = "/var/run/postgresql"
SECRET_KEY = "sk_test_bench"
WEBHOOK_SECRET = "whsec_bench"
PASSWORD = "bench-password-7f3a"
PRODUCT = "Yuja Honey Tea 1kg"


async def pg(sql: str) -> None:
    conn = await asyncpg.connect(database="postgres", host=PG_HOST, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def listen(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


def stripe_signature(payload: bytes) -> str:
    stamp = int(time.time())
    mac = hmac.new(WEBHOOK_SECRET.encode(), f"{stamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={mac}"


@dataclass
class Buyer:
    token: str
    address_id: int


@dataclass
class Result:
    seconds: list[float]
    paid: int
    failed: int
    wall: float


class Shop:
    def __init__(self, http: aiohttp.ClientSession, url: str, stripe_api: StripeServer, admin_token: str) -> None:
        self.http, self.url, self.stripe, self.admin_token = http, url, stripe_api, admin_token

    async def call(self, method: str, path: str, token: str | None, body: dict | None = None,
                   headers: dict | None = None, data: bytes | None = None) -> dict:
        all_headers = dict(headers or {})
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        async with self.http.request(method, self.url + path, json=body if data is None else None, data=data,
                                     headers=all_headers) as response:
            payload = await response.json()
            if response.status >= 400:
                raise RuntimeError(f"{method} {path}: {response.status} {payload}")
            return payload

    async def buy_and_check_out(self, buyer: Buyer, product_id: int) -> int:
        order = await self.call("POST", "/api/orders", buyer.token, {"product_id": product_id, "quantity": 1},
                                {"Idempotency-Key": uuid.uuid4().hex})
        await self.call("POST", f"/api/orders/{order['id']}/checkout", buyer.token, {"address_id": buyer.address_id})
        return order["id"]

    async def by_card(self, buyer: Buyer, product_id: int) -> None:
        order_id = await self.buy_and_check_out(buyer, product_id)
        pay = await self.call("POST", f"/api/orders/{order_id}/pay", buyer.token, {"provider": "stripe"})
        # Stripe's side: the buyer pays on its page; Stripe sends the signed event.
        event = json.dumps(self.stripe.event("checkout.session.completed", self.stripe.pay(pay["payment_ref"])))
        raw = event.encode()
        paid = await self.call("POST", "/api/payments/stripe/webhook", None, data=raw, headers={
            "Content-Type": "application/json", "Stripe-Signature": stripe_signature(raw)})
        assert paid["order"]["status"] == "paid", paid

    async def by_invoice(self, buyer: Buyer, product_id: int) -> None:
        order_id = await self.buy_and_check_out(buyer, product_id)
        await self.call("POST", f"/api/orders/{order_id}/pay", buyer.token, {"provider": "invoice"})
        paid = await self.call("POST", f"/api/orders/{order_id}/confirm-payment", self.admin_token, {})
        assert paid["status"] == "paid", paid


async def sign_up(shop: Shop, index: int) -> Buyer:
    email = f"bench-{index}@buyers.example"
    await shop.call("POST", "/api/auth/register", None, {
        "email": email, "password": PASSWORD, "name": f"Buyer {index}", "country": "KR", "role": "buyer"})
    token = (await shop.call("POST", "/api/auth/login", None, {"email": email, "password": PASSWORD}))["token"]
    address = await shop.call("POST", "/api/addresses", token, {
        "name": f"Kim Minji {index}", "country": "KR", "line1": "1 Jeju-ro", "city": "Jeju",
        "postal_code": "63000", "phone": "+82 64 123 4567"})
    return Buyer(token, address["id"])


async def run(shop: Shop, buyers: list[Buyer], product_id: int, path: str) -> Result:
    go = asyncio.Event()
    times: list[float] = []
    failures = 0

    async def one(buyer: Buyer) -> None:
        nonlocal failures
        await go.wait()
        start = time.perf_counter()
        try:
            await getattr(shop, path)(buyer, product_id)
        except Exception as exc:  # noqa: BLE001 - counted and shown
            failures += 1
            if failures <= 3:
                print(f"  {path} failed: {exc}", file=sys.stderr)
            return
        times.append(time.perf_counter() - start)

    tasks = [asyncio.create_task(one(b)) for b in buyers]
    await asyncio.sleep(0.2)
    started = time.perf_counter()
    go.set()
    await asyncio.gather(*tasks)
    return Result(times, len(times), failures, time.perf_counter() - started)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--buyers", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    name = f"lm_bench_paid_{uuid.uuid4().hex[:8]}"
    await pg(f"CREATE DATABASE {name}")
    url = f"postgresql+asyncpg:///{name}?host={PG_HOST}"
    runners: list[web.AppRunner] = []
    try:
        from web.migrate import upgrade

        await asyncio.to_thread(upgrade, url)
        db = Database(url)
        async with db.transaction() as session:
            await load_demo(session)
            product_id = await session.scalar(select(Product.id).where(Product.name == PRODUCT))
            await session.execute(update(Product).where(Product.id == product_id).values(stock=1_000_000))
        await db.close()

        stripe_api = StripeServer(SECRET_KEY)
        stripe_runner, stripe_api.base_url = await listen(stripe_api.app())
        runners.append(stripe_runner)
        from web.app import create_app

        # The app on a port of its own (its public URL, where Stripe sends buyers back);
        # limits meant for people off, since every buyer here is one address.
        app_holder: dict[str, str] = {}
        settings = Settings(
            database=url, secret="bench-secret", auto_migrate=False, orphan_check_interval=3600.0,
            rate_limits=False, sockets_per_address=100_000, http_connections_per_address=100_000,
            public_url="http://127.0.0.1", stripe_secret_key=SECRET_KEY, stripe_webhook_secret=WEBHOOK_SECRET,
            stripe_api_base=stripe_api.base_url, recordings_dir=Path(tempfile.mkdtemp(prefix="lm-bench-")),
        )
        app = create_app(settings)
        runner, app_holder["url"] = await listen(app)
        runners.insert(0, runner)

        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as http:
            admin = (await Shop(http, app_holder["url"], stripe_api, "").call(
                "POST", "/api/auth/login", None, {"email": "admin@livemall.example", "password": "livemall-demo"}))
            shop = Shop(http, app_holder["url"], stripe_api, admin["token"])
            buyers = [await sign_up(shop, i) for i in range(args.buyers)]
            print(f"{args.buyers} buyers at once, {args.runs} runs each path, PostgreSQL, one process "
                  f"(load average {os.getloadavg()[0]:.1f} before)")
            card_runs, invoice_runs = [], []
            for _ in range(args.runs):
                invoice_runs.append(await run(shop, buyers, product_id, "by_invoice"))
                card_runs.append(await run(shop, buyers, product_id, "by_card"))

        async with Database(url).session() as session:
            paid = await session.scalar(select(Order.id).where(Order.status != OrderStatus.paid).limit(1))
        print(f"every order paid: {paid is None}")
        print(f"{'path':<22}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'paid':>7}{'failed':>8}{'orders/s':>10}")
        rows = {}
        for label, runs in (("card (Stripe)", card_runs), ("invoice (baseline)", invoice_runs)):
            best = sorted(runs, key=lambda r: percentile(r.seconds, 0.95))[len(runs) // 2]  # the median run
            p50, p95, p99 = (percentile(best.seconds, q) * 1000 for q in (0.5, 0.95, 0.99))
            rows[label] = p95
            print(f"{label:<22}{p50:>9.0f}{p95:>9.0f}{p99:>9.0f}{best.paid:>7}{best.failed:>8}"
                  f"{best.paid / best.wall:>10.0f}")
        print(f"card / baseline p95: {rows['card (Stripe)'] / rows['invoice (baseline)']:.2f}x "
              f"(p95 of each path's median run; all p95s: card "
              f"{[round(percentile(r.seconds, .95) * 1000) for r in card_runs]}, invoice "
              f"{[round(percentile(r.seconds, .95) * 1000) for r in invoice_runs]} ms)")
        print(f"load average after: {os.getloadavg()[0]:.1f}; median p95 over runs, card "
              f"{statistics.median(percentile(r.seconds, .95) for r in card_runs) * 1000:.0f} ms")
    finally:
        for runner in runners:
            await runner.cleanup()
        await pg(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


if __name__ == "__main__":
    asyncio.run(main())
