"""The repository layer behaves the same on SQLite and PostgreSQL (each test runs on both)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from orders import accounts, catalog, shows
from orders.demo import load_demo
from orders.errors import EmailTaken, Invalid, Unauthorized
from orders.models import Product, Role, User


async def test_demo_load_is_idempotent(db):
    async with db.transaction() as session:
        first = await load_demo(session)
    async with db.transaction() as session:
        second = await load_demo(session)
    assert first == second
    async with db.session() as session:
        assert len(await catalog.list_committees(session)) == 14
        assert len(await shows.list_shows(session)) == 1


async def test_users_round_trip_utf8_and_refuse_duplicates(db):
    async with db.transaction() as session:
        await accounts.create_user(
            session, email="Kim@Example.kr", password="pw-12345", name="김민준", role=Role.member,
            country="kr", city="서울",
        )
    async with db.session() as session:
        user = await accounts.authenticate(session, "kim@example.kr", "pw-12345")
        assert (user.name, user.city, user.country, user.role) == ("김민준", "서울", "KR", Role.member)
        with pytest.raises(Unauthorized):
            await accounts.authenticate(session, "kim@example.kr", "wrong")
    with pytest.raises(EmailTaken):
        async with db.transaction() as session:
            await accounts.create_user(
                session, email="kim@example.kr", password="x" * 8, name="x", role=Role.buyer, country="KR"
            )


async def test_times_come_back_as_utc(db):
    seoul = timezone(timedelta(hours=9))
    async with db.transaction() as session:
        await load_demo(session)
        host = await session.get(User, 2)
        show = await shows.create_show(
            session, creator=host, title="t", scheduled_at=datetime(2026, 12, 1, 19, 0, tzinfo=seoul), segments=[]
        )
        show_id = show.id
    async with db.session() as session:
        show = await shows.get_show(session, show_id)
        assert show.scheduled_at == datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc)
        assert show.scheduled_at.utcoffset() == timedelta(0)


async def test_product_search_and_committee_filter(db):
    async with db.transaction() as session:
        await load_demo(session)
    async with db.session() as session:
        found = await catalog.list_products(session, q="GREEN tea")
        assert [p.name for p in found] == ["Jeju Organic Green Tea 100g"]
        assert {p.committee.code for p in await catalog.list_products(session, committee="seafood")} == {"seafood"}
        assert await catalog.list_products(session, q="100%") == []


async def test_exhibition_price_applies_only_inside_its_dates(db):
    now = datetime.now(timezone.utc)
    async with db.transaction() as session:
        await load_demo(session, now=now)
    async with db.session() as session:
        assert await catalog.exhibition_price(session, 1, 1, now) == 1200
        assert await catalog.exhibition_price(session, 1, 1, now + timedelta(days=90)) is None
        assert await catalog.exhibition_price(session, 1, 3, now) is None  # not in the exhibition
        assert await catalog.exhibition_price(session, None, 1, now) is None


async def test_stock_can_never_go_negative(db):
    async with db.transaction() as session:
        await load_demo(session)
    with pytest.raises(IntegrityError):
        async with db.transaction() as session:
            await session.execute(update(Product).where(Product.id == 1).values(stock=-1))


async def test_segment_with_unknown_products_is_invalid(db):
    async with db.transaction() as session:
        await load_demo(session)
    with pytest.raises(Invalid):
        async with db.transaction() as session:
            host = await session.get(User, 2)
            await shows.create_show(
                session,
                creator=host,
                title="t",
                scheduled_at=datetime.now(timezone.utc),
                segments=[shows.SegmentPlan("s", "food", [1, 424242])],
            )
