"""Shared fixtures: fresh migrated databases (SQLite and PostgreSQL), a running app, Redis.

Real services only. PostgreSQL is the machine's own (over its unix socket inside the
test network namespace); Redis is a redis-server the fixture starts on a free port.
A missing service skips the test with the reason, except under CI=true where it fails.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import AsyncIterator, Iterator

import pytest

from orders.db import Database
from web.settings import Settings

IN_CI = os.environ.get("CI", "").lower() == "true"
PG_ADMIN_URL = os.environ.get("LIVEMALL_TEST_PG", "postgresql+asyncpg:///test?host=/var/run/postgresql")


def missing_service(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: a missing service is a failure, not a skip)")
    pytest.skip(reason)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# --- PostgreSQL -------------------------------------------------------------------------

def _pg_parts(url: str) -> tuple[str, str, str]:
    """(prefix, database, query) of a postgresql+asyncpg URL."""
    head, _, query = url.partition("?")
    prefix, _, dbname = head.rpartition("/")
    return prefix, dbname, query


def pg_url(dbname: str) -> str:
    prefix, _, query = _pg_parts(PG_ADMIN_URL)
    return f"{prefix}/{dbname}" + (f"?{query}" if query else "")


async def _pg_exec(sql: str) -> None:
    import asyncpg

    prefix, dbname, query = _pg_parts(PG_ADMIN_URL)
    params = dict(p.split("=", 1) for p in query.split("&") if p)
    conn = await asyncpg.connect(database=dbname, host=params.get("host", "localhost"), timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def pg_exec(sql: str) -> None:
    asyncio.run(_pg_exec(sql))


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str | None]:
    """A migrated PostgreSQL database used as the template of each test's database."""
    name = f"lm_tpl_{uuid.uuid4().hex[:10]}"
    try:
        pg_exec(f"CREATE DATABASE {name}")
    except Exception:  # noqa: BLE001 - any failure means "no PostgreSQL here"
        yield None
        return
    from web.migrate import upgrade

    upgrade(pg_url(name))
    yield name
    pg_exec(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    from web.migrate import upgrade

    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


def fresh_sqlite(template: Path, directory: Path) -> str:
    path = directory / f"lm-{uuid.uuid4().hex[:8]}.db"
    shutil.copy(template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    return fresh_sqlite(sqlite_template, tmp_path)


@pytest.fixture
def postgres_url(pg_template: str | None) -> Iterator[str]:
    if pg_template is None:
        missing_service(f"PostgreSQL is not reachable at {PG_ADMIN_URL}")
    name = f"lm_t_{uuid.uuid4().hex[:10]}"
    pg_exec(f"CREATE DATABASE {name} TEMPLATE {pg_template}")
    yield pg_url(name)
    pg_exec(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request) -> str:
    """A fresh migrated database on each backend: tests using it prove parity."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return request.getfixturevalue(name)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.close()


# --- Redis ------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> Iterator[str]:
    """A redis-server of the test run's own, on a free loopback port."""
    binary = shutil.which("redis-server")
    if binary is None:
        missing_service("redis-server is not installed")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        missing_service("redis-server did not start")
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


# --- The app ----------------------------------------------------------------------------

def test_settings(database: str, **overrides) -> Settings:
    # Many tests stage a live show straight in the database, which the relay's orphan
    # check would end: tests that prove that check call it themselves.
    base = dict(database=database, secret="test-secret", auto_migrate=False, orphan_check_interval=3600.0)
    base.update(overrides)
    return Settings(**base)


test_settings.__test__ = False  # a helper, not a test, when imported into a test module


@pytest.fixture
async def demo_db(sqlite_url: str) -> str:
    """A fresh SQLite database with the demo data loaded."""
    from orders.demo import load_demo

    database = Database(sqlite_url)
    async with database.transaction() as session:
        await load_demo(session)
    await database.close()
    return sqlite_url


@pytest.fixture
async def client(aiohttp_client, demo_db: str, tmp_path: Path):
    """An HTTP client on a real app (real sockets, real SQLite) loaded with demo data."""
    from web.app import create_app

    app = create_app(test_settings(demo_db, recordings_dir=tmp_path / "recordings"))
    return await aiohttp_client(app)


async def login(client, email: str, password: str = "livemall-demo") -> str:
    response = await client.post("/api/auth/login", json={"email": email, "password": password})
    assert response.status == 200, await response.text()
    return (await response.json())["token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def record_viewers(db: Database, show_id: int, *user_ids: int) -> None:
    """These users watched the show (as the rooms' audience ledger records it): a sale is
    credited only to a show its buyer watches or watched."""
    from orders.models import ShowViewer

    async with db.transaction() as session:
        session.add_all(ShowViewer(show_id=show_id, viewer_key=f"u{u}", user_id=u) for u in user_ids)
