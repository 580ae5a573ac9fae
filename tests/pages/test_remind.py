"""Remind me on the schedule, in a real browser (web/static/js/remind.js): pressing it
sets the reminder the show-live e-mail is sent for, pressing again takes it back."""

from __future__ import annotations

import pytest
from playwright.async_api import expect
from sqlalchemy import select

from orders.models import Show, ShowReminder, ShowStatus
from tests.pages.conftest import open_page, sign_in

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def reminders(site) -> list[tuple[int, int]]:
    async with site.db.session() as session:
        return [(r.show_id, r.user_id) for r in await session.scalars(select(ShowReminder))]


async def test_remind_me_on_a_scheduled_show_sets_and_clears_the_reminder(site, new_context):
    async with site.db.session() as session:
        show = await session.scalar(select(Show).where(Show.status == ShowStatus.scheduled).order_by(Show.id))
    context = await new_context()
    await sign_in(context, site, "buyer@livemall.example")
    page = await open_page(context, site.at("/"))
    button = page.locator(f'[data-show-id="{show.id}"] [data-remind]')
    assert await button.get_attribute("aria-pressed") == "false"

    await button.click()
    await expect(button).to_have_attribute("aria-pressed", "true")

    await expect(button).to_have_text("Reminder set")
    assert await reminders(site) == [(show.id, 4)]
    await page.reload()
    assert await page.locator(f'[data-show-id="{show.id}"] [data-remind]').get_attribute("aria-pressed") == "true"
    await button.click()
    await expect(button).to_have_attribute("aria-pressed", "false")
    assert await reminders(site) == []
