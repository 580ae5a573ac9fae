"""The giveaway in the browser: the host opens it from the studio (the success message
is a status, not an error), a buyer enters with one tap on the watch page and sees the
winner and the draw's proof when it is drawn."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.pages.conftest import go_live_in_db, sign_in, studio_page, watch_page

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_giveaway_opened_in_the_studio_is_entered_and_won_on_the_watch_page(site, new_context):
    await go_live_in_db(site)
    host_context, buyer_context = await new_context(), await new_context()
    await sign_in(host_context, site, "host@livemall.example")
    await sign_in(buyer_context, site, "buyer@livemall.example")
    studio = await studio_page(host_context, site)
    watch = await watch_page(buyer_context, site)

    form = studio.locator("#giveaway-open")
    await form.locator('input[name="seconds"]').fill("60")
    await form.get_by_role("button", name="Open the giveaway").click()
    await studio.get_by_test_id("giveaway-open-status").filter(has_text="Started.").wait_for()
    assert await studio.get_by_test_id("giveaway-open-status").get_attribute("role") == "status"

    await watch.get_by_test_id("giveaway-enter").click()
    await watch.get_by_test_id("selling-status").filter(has_text="You're in").wait_for()
    await watch.get_by_test_id("giveaway-entries").filter(has_text="Entries: 1").wait_for()

    async with site.db.transaction() as session:  # the window's end, now: the sweeper draws
        await session.execute(text("UPDATE giveaways SET closes_at = created_at"))
    await watch.get_by_test_id("giveaway-winner").filter(has_text="You won!").wait_for()
    seed = await watch.get_by_test_id("giveaway-seed").text_content()
    assert len(seed) == 64
