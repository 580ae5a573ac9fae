"""Screenshots of every page at desktop and phone size. With LIVEMALL_SCREENSHOTS=1 they
replace the ones in docs/screenshots/ (docs/pages.md shows them); otherwise they go to
the test's temporary directory. Each page must stay where it is and render its heading.

With the media layer wired the host really goes live first, so the watch and co-view
pages show the studio's (fake) camera; without it the show is only marked live."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from orders.models import Product, Role, Show, User
from tests.pages.conftest import DESKTOP, PHONE, open_page, shoot, sign_in

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _pin_and_open_room(site) -> str:
    """Pins a product and opens a co-view room; returns the room's code."""
    from rooms.coview import create_room

    async with site.db.transaction() as session:
        show = await session.get(Show, 1)
        show.pinned_product_id = await session.scalar(
            select(Product.id).where(Product.name == "Jeju Organic Green Tea 100g"))
        member = await session.scalar(select(User).where(User.role == Role.member))
        room = await create_room(session, show_id=show.id, owner=member, at=datetime.now(timezone.utc), ttl=3600,
                                 member_limit=50)
        return room.code


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
async def test_screenshots_of_every_page(site, new_context, viewport, tmp_path):
    phone = viewport is PHONE

    async def person(email):
        context = await new_context(viewport=viewport, is_mobile=phone, has_touch=phone)
        if email:
            await sign_in(context, site, email)
        return context

    studio = await open_page(await person("host@livemall.example"), site.at("/studio/1"))
    await studio.wait_for_function("() => document.getElementById('preview').videoWidth > 0")
    await studio.click("#go-live")
    await studio.get_by_test_id("air-status").filter(has_text="On air").wait_for()
    code = await _pin_and_open_room(site)
    shots = [
        (None, "/", "schedule"),
        ("buyer@livemall.example", "/shows/1", "watch"),
        ("member@livemall.example", f"/coview/{code}", "coview"),
        ("admin@livemall.example", "/admin", "admin"),
        (None, "/login", "login"),
        (None, "/register", "register"),
    ]
    for email, path, name in shots:
        page = await open_page(await person(email), site.at(path))
        assert page.url == site.at(path), f"{name}: ended at {page.url}"
        await page.locator("h1").first.wait_for()
        if name in ("watch", "coview"):
            await page.wait_for_function("() => document.getElementById('video').videoWidth > 0", timeout=20_000)
        if name == "coview":
            await page.locator("#members li").first.wait_for()
        path = await shoot(page, name, tmp_path)
        assert path.stat().st_size > 5_000
    await studio.get_by_test_id("viewers").filter(has_text="watching").wait_for()
    await shoot(studio, "studio", tmp_path)
