"""Flash sale: 1,000 buyers hit one product at the same instant.

Measures the project's real code path — `OrderDesk.place`, the domain function the
`POST /api/orders` handler calls (idempotency check, show attribution, exhibition price,
stock gate, order insert, commit) — against a plain baseline on the same PostgreSQL,
engine settings and pool size (an engine each, see main): one transaction per buyer with
`SELECT stock … FOR UPDATE`, `UPDATE products`, `INSERT INTO orders`, `COMMIT`.

Two scenarios: stock 100 (900 buyers must hear "sold out") and stock 10,000 (everyone
buys). Every buyer is a distinct user with their own Idempotency-Key and quantity 1.
All buyers are released together; a buyer's latency runs from that release to their
answer. Accepted orders per second = accepted orders ÷ time until the last answer.
After each run the books are checked in the database: orders stored + stock left must
equal the initial stock, and the stock must not be negative ("oversold" counts any excess).

The benchmark process is set up as a serving process is (web.cli.freeze_startup_heap:
the start-up heap out of the garbage collector's sight) before either path runs.

CPU: the benchmark process (buyers and server code share it) and PostgreSQL's
processes, read from /proc, per run.

Runs inside the test network namespace or outside it; it only needs PostgreSQL:
    /work/venv/bin/python bench/flash_sale.py
    /work/venv/bin/python bench/flash_sale.py --url 'postgresql+asyncpg:///lm_bench_flash?host=/var/run/postgresql'
It creates its own database (default lm_bench_flash) and drops it at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg  # noqa: E402
from sqlalchemy import delete, func, insert, select, text, update  # noqa: E402

from orders.db import Database  # noqa: E402
from orders.errors import SoldOut  # noqa: E402
from orders.models import (  # noqa: E402
    Committee,
    Order,
    OrderStatus,
    Product,
    Role,
    Segment,
    Show,
    ShowViewer,
    Supplier,
    User,
)
from orders.ordering import OrderDesk, OrderRequest  # noqa: E402
from web.cli import freeze_startup_heap  # noqa: E402

DEFAULT_URL = "postgresql+asyncpg:///lm_bench_flash?host=/var/run/postgresql"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- set-up -----------------------------------------------------------------------------

def url_parts(url: str) -> tuple[str, str, dict[str, str]]:
    head, _, query = url.partition("?")
    prefix, _, dbname = head.rpartition("/")
    params = dict(p.split("=", 1) for p in query.split("&") if p)
    return prefix, dbname, params


async def admin(url: str, sql: str) -> None:
    _, _, params = url_parts(url)
    conn = await asyncpg.connect(database="postgres", host=params.get("host", "localhost"), timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def seed(db: Database, buyers: int) -> tuple[int, int]:
    """A committee, a live show with a segment, one product, `buyers` users: (product, show)."""
    now = datetime.now(timezone.utc)
    async with db.transaction() as session:
        committee = Committee(code="food", name_ko="식품", name_en="Food", commission_bp=300)
        supplier = Supplier(name="Bench Supplier", region="Jeju")
        host = User(email="host@bench", password_hash="x", name="host", role=Role.host, country="KR")
        session.add_all([committee, supplier, host])
        await session.flush()
        product = Product(supplier_id=supplier.id, committee_id=committee.id, name="Flash item", price=990,
                          currency="USD", stock=0)
        show = Show(title="Flash sale", host_id=host.id, scheduled_at=now)
        session.add_all([product, show])
        await session.flush()
        segment = Segment(show_id=show.id, position=1, title="Flash", committee_id=committee.id)
        session.add(segment)
        await session.flush()
        show.current_segment_id = segment.id
        await session.execute(insert(User), [
            {"email": f"b{i}@bench", "password_hash": "x", "name": f"b{i}", "role": Role.buyer, "country": "KR",
             "created_at": now} for i in range(buyers)
        ])
        # The buyers watch the show (a sale is credited only to a show its buyer watched).
        ids = list(await session.scalars(select(User.id).where(User.role == Role.buyer)))
        await session.execute(insert(ShowViewer), [
            {"show_id": show.id, "viewer_key": f"u{i}", "user_id": i, "first_seen": now} for i in ids])
        return product.id, show.id


async def buyer_ids(db: Database) -> list[int]:
    async with db.session() as session:
        return list(await session.scalars(select(User.id).where(User.role == Role.buyer).order_by(User.id)))


async def reset(db: Database, product_id: int, stock: int) -> None:
    async with db.transaction() as session:
        await session.execute(delete(Order))
        await session.execute(update(Product).where(Product.id == product_id).values(stock=stock))
    async with db.engine.connect() as conn:  # fresh statistics, no dead rows carried between runs
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE orders"))
        await conn.execute(text("VACUUM ANALYZE products"))


# --- the two paths ----------------------------------------------------------------------

async def project_buy(desk: OrderDesk, product_id: int, show_id: int, buyer: int, key: str) -> bool:
    try:
        await desk.place(OrderRequest(buyer_id=buyer, idempotency_key=key, product_id=product_id, quantity=1,
                                      show_id=show_id))
        return True
    except SoldOut:
        return False


_orders = Order.__table__
_products = Product.__table__


async def baseline_buy(db: Database, product_id: int, show_id: int, buyer: int, key: str) -> bool:
    """One transaction per buyer around SELECT … FOR UPDATE: the classic stock check."""
    now = datetime.now(timezone.utc)
    async with db.engine.begin() as conn:
        stock = await conn.scalar(
            select(_products.c.stock).where(_products.c.id == product_id).with_for_update()
        )
        if stock < 1:
            return False
        await conn.execute(update(_products).where(_products.c.id == product_id).values(stock=stock - 1))
        await conn.execute(insert(_orders).values(
            buyer_id=buyer, idempotency_key=key, request_hash="", product_id=product_id, quantity=1,
            unit_price=990, currency="USD", total=990, status=OrderStatus.pending, show_id=show_id,
            created_at=now, updated_at=now, expires_at=now + timedelta(minutes=30),
        ))
        return True


# --- measuring --------------------------------------------------------------------------

def postgres_ticks() -> dict[int, int]:
    """CPU ticks used so far by each PostgreSQL process on this machine."""
    ticks: dict[int, int] = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() != "postgres":
                    continue
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ticks[int(pid)] = int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            continue
    return ticks


def postgres_cpu_since(before: dict[int, int]) -> float:
    """CPU seconds PostgreSQL spent since `before` (processes that exited meanwhile are not counted)."""
    after = postgres_ticks()
    return sum(t - before.get(pid, 0) for pid, t in after.items()) / CLK_TCK


@dataclass
class Run:
    accepted: int
    refused: int
    errors: int
    wall: float
    latencies: list[float]
    oversold: int
    books_ok: bool
    cpu_bench: float
    cpu_pg: float

    @property
    def rate(self) -> float:
        return self.accepted / self.wall if self.wall else 0.0

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def run(db: Database, buy, product_id: int, show_id: int, buyers: list[int], stock: int, tag: str) -> Run:
    await reset(db, product_id, stock)
    go = asyncio.Event()
    latencies: list[float] = []
    outcomes = {"accepted": 0, "refused": 0, "errors": 0}
    start = 0.0

    async def buyer(index: int, buyer_id: int) -> None:
        await go.wait()
        try:
            ok = await buy(product_id, show_id, buyer_id, f"{tag}-{index}")
            outcomes["accepted" if ok else "refused"] += 1
        except Exception as exc:  # noqa: BLE001 - counted, and the first few shown
            outcomes["errors"] += 1
            if outcomes["errors"] <= 3:
                print(f"  error: {type(exc).__name__}: {exc}", file=sys.stderr)
        latencies.append(time.perf_counter() - start)

    tasks = [asyncio.create_task(buyer(i, b)) for i, b in enumerate(buyers)]
    await asyncio.sleep(0)  # every buyer is now waiting at the gate
    cpu0, pg0 = time.process_time(), postgres_ticks()
    start = time.perf_counter()
    go.set()
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - start
    cpu_bench, cpu_pg = time.process_time() - cpu0, postgres_cpu_since(pg0)

    async with db.session() as session:
        left = await session.scalar(select(Product.stock).where(Product.id == product_id))
        stored = await session.scalar(select(func.coalesce(func.sum(Order.quantity), 0))
                                      .where(Order.product_id == product_id))
    oversold = max(0, stored - stock) + max(0, -left)
    return Run(outcomes["accepted"], outcomes["refused"], outcomes["errors"], wall, latencies, oversold,
               stored + left == stock and left >= 0 and stored == outcomes["accepted"], cpu_bench, cpu_pg)


def median_run(runs: list[Run]) -> Run:
    return sorted(runs, key=lambda r: r.rate)[len(runs) // 2]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=DEFAULT_URL, help="PostgreSQL URL of the benchmark's own database")
    parser.add_argument("--buyers", type=int, default=1000)
    parser.add_argument("--stocks", type=int, nargs="+", default=[100, 10_000])
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the median run is shown")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    _, dbname, _ = url_parts(args.url)
    await admin(args.url, f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
    await admin(args.url, f"CREATE DATABASE {dbname}")
    try:
        from web.migrate import upgrade

        await asyncio.to_thread(upgrade, args.url)
        db = Database(args.url)
        product_id, show_id = await seed(db, args.buyers)
        buyers = await buyer_ids(db)
        # Each path gets its own engine with the same settings: a burst of the baseline
        # opens every overflow connection, and on return the pool keeps whichever came
        # back first; sharing one pool made the project's next runs start on connections
        # that had never prepared its statements (and the other way round).
        baseline_db = Database(args.url)
        desk = OrderDesk(db, max_quantity=100, expiry_seconds=1800)
        # Set up as `livemall serve` is once it listens: the start-up heap frozen, so a
        # full garbage collection does not walk it in the middle of a burst (both paths).
        freeze_startup_heap()

        async def project(p: int, s: int, b: int, k: str) -> bool:
            return await project_buy(desk, p, s, b, k)

        async def baseline(p: int, s: int, b: int, k: str) -> bool:
            return await baseline_buy(baseline_db, p, s, b, k)

        pool = db.engine.pool
        print(f"flash sale: {len(buyers)} concurrent buyers, quantity 1 each, one product; PostgreSQL "
              f"{db.engine.dialect.server_version_info}; pool {pool.size()}+{pool._max_overflow} connections "
              f"for each path; median of {args.repeat} runs; project path = OrderDesk.place (domain)")
        # Warm both paths with a whole burst of each scenario, as a server that has been
        # selling for a while is warm: every pooled connection has opened and prepared
        # its statements (asyncpg prepares per connection), so the figures are the
        # steady state, not the first burst after start-up.
        for stock in args.stocks:
            for path in (project, baseline):
                await run(db, path, product_id, show_id, buyers, stock, f"warm{stock}")
        header = (f"{'scenario':<12} {'path':<22} {'accepted':>8} {'sold out':>8} {'err':>4} {'orders/s':>9} "
                  f"{'p50 ms':>8} {'p99 ms':>8} {'oversold':>8} {'books':>5} {'wall s':>7} {'cpu s':>6} "
                  f"{'pg cpu s':>8}")
        print(header)
        print("-" * len(header))
        summary = []
        for stock in args.stocks:
            figures = {}
            for name, path in (("project (batched gate)", project), ("SELECT FOR UPDATE", baseline)):
                runs = [await run(db, path, product_id, show_id, buyers, stock, f"s{stock}-{name[:3]}-{i}")
                        for i in range(args.repeat)]
                r = median_run(runs)
                figures[name] = r
                oversold = max(x.oversold for x in runs)
                books = "ok" if all(x.books_ok for x in runs) else "BAD"
                print(f"{'stock ' + str(stock):<12} {name:<22} {r.accepted:>8} {r.refused:>8} {r.errors:>4} "
                      f"{r.rate:>9.0f} {r.pct(0.5):>8.1f} {r.pct(0.99):>8.1f} {oversold:>8} {books:>5} "
                      f"{r.wall:>7.3f} {r.cpu_bench:>6.2f} {r.cpu_pg:>8.2f}")
            p, b = figures["project (batched gate)"], figures["SELECT FOR UPDATE"]
            summary.append((stock, p.rate / b.rate if b.rate else float("inf"), p.pct(0.99)))
        print()
        for stock, ratio, p99 in summary:
            verdict = "meets" if ratio >= 5 and p99 <= 50 else "misses"
            print(f"stock {stock}: project ÷ baseline = {ratio:.1f}× orders/s, project p99 {p99:.1f} ms "
                  f"({verdict} the target of ≥5× at p99 ≤ 50 ms)")
        await desk.close()
        await db.close()
        await baseline_db.close()
    finally:
        if not args.keep:
            await admin(args.url, f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")


if __name__ == "__main__":
    asyncio.run(main())
