"""A shop: a real app (real port, real database on both backends) with the demo data,
its events recorded at the edge where the rooms would send them on.

Demo facts the tests lean on: users 1 admin, 2 host, 3 member (broker), 4 buyer;
products 1 green tea (1500, exhibition price 1200, stock 120, food), 2 yuja tea
(1200 / 990), 5 snail essence (2200, cosmetics), 8 mask line (industrial, stock 3),
10 the package (industrial); show 1 in exhibition 1 with segments 1 food,
2 cosmetics, 3 medical. The four users have watched show 1 (`show_viewers`): a sale is
credited only to a show its buyer watched.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import pytest
from sqlalchemy import select, update

from orders.db import Database
from orders.demo import load_demo
from orders.events import RecordedEvents
from orders.models import CoviewRoom, Order, Product, Show, ShowStatus, ShowViewer
from orders.payments import SIGNATURE_HEADER, sign
from tests.conftest import bearer, login, test_settings
from web.appkeys import DB, EVENTS

WEBHOOK_SECRET = "test-webhook-secret"
GREEN_TEA, YUJA_TEA, SNAIL, MASK_LINE, PACKAGE = 1, 2, 5, 8, 10
ADMIN, HOST, MEMBER, BUYER = 1, 2, 3, 4


class WatchedEvents(RecordedEvents):
    """RecordedEvents a test can await instead of sleeping."""

    def __init__(self) -> None:
        super().__init__()
        self._changed = asyncio.Event()

    async def to_show(self, show_id: int, event: str, data: dict[str, Any]) -> None:
        await super().to_show(show_id, event, data)
        self._changed.set()

    async def to_user(self, user_id: int, event: str, data: dict[str, Any]) -> None:
        await super().to_user(user_id, event, data)
        self._changed.set()

    def named(self, event: str) -> list[tuple[str, int, str, dict[str, Any]]]:
        return [e for e in self.sent if e[2] == event]

    async def wait_for(self, predicate: Callable[[tuple], bool], timeout: float = 10.0) -> tuple:
        async def watch() -> tuple:
            while True:
                for sent in self.sent:
                    if predicate(sent):
                        return sent
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(watch(), timeout)


@dataclass
class Shop:
    client: Any
    events: WatchedEvents
    tokens: dict[str, str] = field(default_factory=dict)
    _keys: itertools.count = field(default_factory=lambda: itertools.count(1))

    @property
    def app(self):
        return self.client.server.app

    @property
    def db(self) -> Database:
        return self.app[DB]

    async def token(self, who: str) -> str:
        if who not in self.tokens:
            self.tokens[who] = await login(self.client, f"{who}@livemall.example")
        return self.tokens[who]

    async def headers(self, who: str) -> dict[str, str]:
        return bearer(await self.token(who))

    async def order(self, who: str = "buyer", *, key: str | None = None, **body) -> Any:
        body.setdefault("product_id", GREEN_TEA)
        body.setdefault("quantity", 1)
        headers = {**await self.headers(who), "Idempotency-Key": key or f"k-{next(self._keys)}-{uuid.uuid4().hex[:6]}"}
        return await self.client.post("/api/orders", json=body, headers=headers)

    async def placed(self, who: str = "buyer", **body) -> dict[str, Any]:
        response = await self.order(who, **body)
        assert response.status == 201, await response.text()
        return await response.json()

    async def post(self, path: str, who: str | None = None, json_body: Any = None) -> Any:
        headers = await self.headers(who) if who else {}
        return await self.client.post(path, json=json_body if json_body is not None else {}, headers=headers)

    async def get(self, path: str, who: str | None = None) -> Any:
        headers = await self.headers(who) if who else {}
        return await self.client.get(path, headers=headers)

    async def ship_to(self, order_id: int, country: str = "KR") -> None:
        """Give an order a ship-to address with free shipping, as a checkout would, so
        payment (which needs one: orders/checkout.py) can start; its total is unchanged.
        tests/orders/test_checkout_*.py go through the real checkout."""
        async with self.db.transaction() as session:
            await session.execute(update(Order).where(Order.id == order_id).values(
                ship_name="Kim Minji", ship_line1="1 Jeju-ro", ship_city="Jeju", ship_postal_code="63000",
                ship_country=country, ship_phone="+82641234567", shipping_amount=0, incoterm="DAP"))

    async def stock(self, product_id: int) -> int:
        async with self.db.session() as session:
            return await session.scalar(select(Product.stock).where(Product.id == product_id))

    async def set_stock(self, product_id: int, stock: int) -> None:
        async with self.db.transaction() as session:
            await session.execute(update(Product).where(Product.id == product_id).values(stock=stock))

    async def go_live(self, show_id: int = 1, segment_id: int | None = 1) -> None:
        async with self.db.transaction() as session:
            await session.execute(update(Show).where(Show.id == show_id).values(
                status=ShowStatus.live, current_segment_id=segment_id, started_at=datetime.now(timezone.utc)))

    async def watched(self, show_id: int, *user_ids: int) -> None:
        """Record these users as viewers of the show, as the rooms' audience ledger does."""
        async with self.db.transaction() as session:
            session.add_all(ShowViewer(show_id=show_id, viewer_key=f"u{u}", user_id=u) for u in user_ids)

    async def coview(self, owner_id: int = MEMBER, show_id: int = 1, *, code: str | None = None,
                     expires_in: float = 3600) -> str:
        code = code or uuid.uuid4().hex[:16]
        now = datetime.now(timezone.utc)
        async with self.db.transaction() as session:
            session.add(CoviewRoom(code=code, show_id=show_id, owner_id=owner_id, created_at=now,
                                   expires_at=now + timedelta(seconds=expires_in)))
        return code

    async def webhook(self, event: dict[str, Any], *, secret: str = WEBHOOK_SECRET, at: float | None = None,
                      signature: str | None = None) -> Any:
        raw = json.dumps(event).encode()
        header = signature or sign(secret, raw, int(time.time() if at is None else at))
        return await self.client.post("/api/payments/sandbox/webhook", data=raw,
                                      headers={SIGNATURE_HEADER: header, "Content-Type": "application/json"})


async def open_shop(aiohttp_client, database_url: str, tmp_path: Path, **overrides) -> Shop:
    database = Database(database_url)
    async with database.transaction() as session:
        await load_demo(session)
        session.add_all(ShowViewer(show_id=1, viewer_key=f"u{u}", user_id=u) for u in (ADMIN, HOST, MEMBER, BUYER))
    await database.close()
    from web.app import create_app

    settings = dict(payment_sandbox=True, payment_webhook_secret=WEBHOOK_SECRET, recordings_dir=tmp_path / "recordings")
    settings.update(overrides)
    app = create_app(test_settings(database_url, **settings))
    events = WatchedEvents()
    app[EVENTS] = events
    return Shop(await aiohttp_client(app), events)


@pytest.fixture
async def shop(aiohttp_client, sqlite_url: str, tmp_path: Path) -> Shop:
    """The shop on SQLite: for HTTP behaviour that does not depend on the database."""
    return await open_shop(aiohttp_client, sqlite_url, tmp_path)


@pytest.fixture
async def any_shop(aiohttp_client, database_url: str, tmp_path: Path) -> Shop:
    """The shop on SQLite and on PostgreSQL: for behaviour that must hold on both."""
    return await open_shop(aiohttp_client, database_url, tmp_path)
