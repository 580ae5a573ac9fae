"""PostgreSQL lost in the middle of an order: 503 JSON, nothing half-written, and the same
Idempotency-Key works once the database is back.

The app reaches PostgreSQL through a TCP relay of the test's own, in front of the server's
unix socket. The relay cuts every connection the moment it sees the order transaction
lock the product row (`UPDATE products`, sent after the order rows were inserted and
before the stock is written and committed): the worst moment for a half-written order.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.conftest import PG_ADMIN_URL, bearer, free_port, login, test_settings

SOCKET_DIR = dict(p.split("=", 1) for p in PG_ADMIN_URL.partition("?")[2].split("&") if p).get(
    "host", "/var/run/postgresql")
TEA = 1  # demo product: Jeju Organic Green Tea, retail, MOQ 1


class CuttingRelay:
    """TCP → PostgreSQL's unix socket; `cut_on` bytes from the client end every connection."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cut_on: bytes | None = None
        self.cuts = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.cut()

    def cut(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_unix_connection(f"{SOCKET_DIR}/.s.PGSQL.5432")
        self._writers |= {client_w, server_w}

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, watch: bool) -> None:
            try:
                while data := await reader.read(65536):
                    if watch and self.cut_on is not None and self.cut_on in data:
                        self.cuts += 1
                        self.cut()  # the statement never reaches the server
                        return
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.transport.abort()

        await asyncio.gather(pipe(client_r, server_w, True), pipe(server_r, client_w, False))


@pytest.fixture
async def relay() -> AsyncIterator[CuttingRelay]:
    relay = CuttingRelay(free_port())
    await relay.start()
    yield relay
    await relay.close()


@pytest.fixture
async def demo_pg(postgres_url: str) -> str:
    from orders.db import Database
    from orders.demo import load_demo

    database = Database(postgres_url)
    async with database.transaction() as session:
        await load_demo(session)
    await database.close()
    return postgres_url


async def _books(dbname: str, buyer_id: int) -> tuple[int, int]:
    """(the buyer's orders, the tea's stock), read straight from PostgreSQL."""
    conn = await asyncpg.connect(database=dbname, host=SOCKET_DIR)
    try:
        orders = await conn.fetchval("SELECT count(*) FROM orders WHERE buyer_id = $1", buyer_id)
        stock = await conn.fetchval("SELECT stock FROM products WHERE id = $1", TEA)
    finally:
        await conn.close()
    return orders, stock


async def test_an_order_cut_off_from_postgresql_is_503_and_leaves_nothing_behind(
    aiohttp_client, demo_pg, relay, tmp_path
):
    from web.app import create_app

    dbname = demo_pg.partition("?")[0].rpartition("/")[2]
    via_relay = f"postgresql+asyncpg://127.0.0.1:{relay.port}/{dbname}"
    client = await aiohttp_client(create_app(test_settings(via_relay, recordings_dir=tmp_path / "rec")))
    token = await login(client, "buyer@livemall.example")
    buyer_id = (await (await client.get("/api/me", headers=bearer(token))).json())["user"]["id"]
    orders_before, stock_before = await _books(dbname, buyer_id)
    key = {"Idempotency-Key": uuid.uuid4().hex}

    relay.cut_on = b"UPDATE products"
    response = await client.post("/api/orders", json={"product_id": TEA, "quantity": 3},
                                 headers={**bearer(token), **key})
    assert relay.cuts == 1  # the connection died inside the order's transaction
    assert response.status == 503
    assert response.content_type == "application/json"
    assert (await response.json())["error"] == "unavailable"
    assert int(response.headers["Retry-After"]) > 0
    assert await _books(dbname, buyer_id) == (orders_before, stock_before)

    relay.cut_on = None  # PostgreSQL is back: the same key places the order, once
    response = await client.post("/api/orders", json={"product_id": TEA, "quantity": 3},
                                 headers={**bearer(token), **key})
    assert response.status == 201, await response.text()
    assert "Idempotency-Replayed" not in response.headers
    assert await _books(dbname, buyer_id) == (orders_before + 1, stock_before - 3)
