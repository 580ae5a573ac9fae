"""Fixtures for the security tests: the rooms' real app-on-a-port and Socket.IO clients,
and the HTTP client on a PostgreSQL app (where bad ids and NUL bytes bite)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import test_settings
from tests.rooms.conftest import load_demo_into, server, start  # noqa: F401 - fixtures

__all__ = ["server", "start"]


@pytest.fixture
async def pg_client(aiohttp_client, postgres_url: str, tmp_path: Path):
    """An HTTP client on a real app on PostgreSQL, with the demo data."""
    from web.app import create_app

    await load_demo_into(postgres_url)
    return await aiohttp_client(create_app(test_settings(postgres_url, recordings_dir=tmp_path / "recordings")))
