"""Browser tests: the app on a real port with the demo data, driven by Debian's
Chromium through Playwright (Playwright's own browser download does not work here).

The browser is launched once per session; each test gets a fresh app, database and
browser context. Tests run in the session's event loop (`pytestmark` in each module)
so the app and the browser share it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest_asyncio
from aiohttp import web

from orders.db import Database
from tests.conftest import free_port, fresh_sqlite, missing_service, test_settings

CHROMIUM = os.environ.get("LIVEMALL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--allow-loopback-in-peer-connection",
    # A camera and microphone for the studio: Chromium's test pattern and beep.
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    # Viewers start video without a click in the tests (a real browser needs one for sound).
    "--autoplay-policy=no-user-gesture-required",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
# Screenshots are always taken; they replace the committed ones only when asked, so a
# test run leaves the working tree clean: LIVEMALL_SCREENSHOTS=1 bash tests/run tests/pages
KEEP_SCREENSHOTS = os.environ.get("LIVEMALL_SCREENSHOTS") == "1"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
PASSWORD = "livemall-demo"


@dataclass
class Site:
    url: str
    app: web.Application
    db: Database  # the app's own database handle, for arranging and checking state

    def at(self, path: str) -> str:
        return self.url + path


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser():
    if not Path(CHROMIUM).exists():
        missing_service(f"{CHROMIUM} is missing: apt-get install chromium (listed in .ci/apt-packages)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        await chromium.close()


@pytest_asyncio.fixture(loop_scope="session")
async def site(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[Site]:
    """The whole app (every capability wired in web/app.py) on a free loopback port."""
    from orders.demo import load_demo
    from web.app import create_app
    from web.appkeys import DB

    url = fresh_sqlite(sqlite_template, tmp_path)
    database = Database(url)
    async with database.transaction() as session:
        await load_demo(session)
    await database.close()
    app = create_app(test_settings(url, recordings_dir=tmp_path / "recordings"))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield Site(f"http://127.0.0.1:{port}", app, app[DB])
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture(loop_scope="session")
async def new_context(browser):
    """Makes browser contexts (one per simulated person); all closed after the test,
    which fails if any page had an uncaught script error."""
    made = []
    script_errors: list[str] = []

    def watch(page) -> None:
        page.on("pageerror", lambda exc: script_errors.append(f"{page.url}: {exc}"))

    async def make(locale: str = "en-US", timezone_id: str = "UTC", viewport: dict | None = None, **extra):
        context = await browser.new_context(
            locale=locale, timezone_id=timezone_id, viewport=viewport or DESKTOP, **extra
        )
        context.on("page", watch)
        context.set_default_timeout(15_000)  # a stuck page fails in seconds, not minutes
        made.append(context)
        return context

    yield make
    for context in made:
        await context.close()
    assert script_errors == [], "uncaught errors in the pages' scripts"


async def sign_in(context, site: Site, email: str, password: str = PASSWORD) -> None:
    """Signs a browser context in through the API (the session cookie lands in the context)."""
    response = await context.request.post(site.at("/api/auth/login"), data={"email": email, "password": password})
    assert response.status == 200, await response.text()


async def open_page(context, url: str):
    page = await context.new_page()
    await page.goto(url)
    return page


async def shoot(page, name: str, scratch: Path) -> Path:
    """Saves <name>-<width>.png in docs/screenshots/ (LIVEMALL_SCREENSHOTS=1) or `scratch`."""
    directory = SCREENSHOTS if KEEP_SCREENSHOTS else scratch
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{page.viewport_size['width']}.png"
    await page.screenshot(path=str(path), full_page=False)
    return path


def utc(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


async def go_live_in_db(site: Site, show_id: int = 1) -> None:
    """Marks a show live as the media layer would when a publisher connects (for page
    tests that need a live show but no video)."""
    from orders import shows

    async with site.db.transaction() as session:
        await shows.mark_live(session, show_id, datetime.now(timezone.utc), None)


async def watch_page(context, site: Site, path: str = "/shows/1"):
    """A watch (or co-view) page that has received the room's `state`."""
    page = await open_page(context, site.at(path))
    await page.locator('#watch[data-connected="true"]').wait_for()
    return page


async def studio_page(context, site: Site, show_id: int = 1):
    page = await open_page(context, site.at(f"/studio/{show_id}"))
    await page.locator('#studio[data-connected="true"]').wait_for()
    return page
