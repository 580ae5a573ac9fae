"""The pages in a real browser: schedule, sign-in and registration, redirects to
/login, languages, escaping and the phone-sized layout."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from orders import shows
from orders.accounts import create_user
from orders.models import Product, Role, Show, User
from tests.pages.conftest import PHONE, open_page, sign_in

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _show(site) -> Show:
    async with site.db.session() as session:
        return await session.scalar(select(Show).order_by(Show.id).limit(1))


def _clock(dt: datetime, zone: str) -> str:
    local = dt.astimezone(ZoneInfo(zone))
    return f"{local.hour % 12 or 12}:{local.minute:02d} {'AM' if local.hour < 12 else 'PM'}"


def _spaces(text: str) -> str:
    # ICU puts narrow or no-break spaces before AM/PM, depending on its version.
    return text.replace("\u202f", " ").replace("\xa0", " ")


async def test_schedule_shows_each_show_in_the_viewers_time_zone(site, new_context):
    show = await _show(site)
    seen = {}
    for zone in ("Asia/Seoul", "America/New_York"):
        page = await open_page(await new_context(timezone_id=zone), site.at("/"))
        seen[zone] = _spaces(await page.locator(f'[data-show-id="{show.id}"] time').text_content())
        assert _clock(show.scheduled_at, zone) in seen[zone]
    assert seen["Asia/Seoul"] != seen["America/New_York"]


def _korean_clock(dt: datetime, zone: str) -> tuple[str, str]:
    local = dt.astimezone(ZoneInfo(zone))
    return (f"{local.year}. {local.month}. {local.day}.",
            f"{'오전' if local.hour < 12 else '오후'} {local.hour % 12 or 12}:{local.minute:02d}")


async def test_korean_schedule_writes_dates_the_korean_way_in_the_viewers_zone(site, new_context):
    show = await _show(site)
    for zone in ("Asia/Seoul", "America/Los_Angeles"):
        page = await open_page(await new_context(locale="ko-KR", timezone_id=zone), site.at("/"))
        shown = _spaces(await page.locator(f'[data-show-id="{show.id}"] time').text_content())
        date, clock = _korean_clock(show.scheduled_at, zone)
        assert date in shown and clock in shown, (zone, shown)


async def test_the_time_zone_is_named_in_the_tooltip(site, new_context):
    show = await _show(site)
    page = await open_page(await new_context(timezone_id="Asia/Seoul"), site.at("/"))
    title = await page.locator(f'[data-show-id="{show.id}"] time').get_attribute("title")
    assert "Korean Standard Time" in title


@pytest.mark.parametrize(("locale", "tea", "won"), [("en-US", "$15.00", "₩15,000"), ("ko-KR", "US$15.00", "₩15,000")])
async def test_admin_lists_prices_in_each_products_currency_for_the_locale(site, new_context, locale, tea, won):
    from orders.models import ProductKind, Supplier

    async with site.db.transaction() as session:
        supplier = await session.scalar(select(Supplier).limit(1))
        laver = await session.scalar(select(Product).where(Product.name == "Seasoned Laver 20-pack"))
        session.add(Product(supplier_id=supplier.id, committee_id=laver.committee_id, name="Laver (KRW)",
                            price=15000, currency="KRW", stock=3, kind=ProductKind.retail, moq=1))
    context = await new_context(locale=locale)
    await sign_in(context, site, "admin@livemall.example")
    page = await open_page(context, site.at("/admin"))
    row = page.locator("#products tbody tr")
    assert _spaces(await row.filter(has_text="Jeju Organic Green Tea 100g").locator("td").nth(3).text_content()) == tea
    assert _spaces(await row.filter(has_text="Laver (KRW)").locator("td").nth(3).text_content()) == won


async def test_schedule_lists_segments_committees_and_marks_live_shows(site, new_context):
    show = await _show(site)
    async with site.db.transaction() as session:
        await shows.mark_live(session, show.id, datetime.now(timezone.utc), None)
    page = await open_page(await new_context(), site.at("/"))
    card = page.locator(f'#live [data-show-id="{show.id}"]')
    assert await card.get_by_test_id("live-badge").text_content() == "Live"
    committees = await card.locator(".committee").all_text_contents()
    assert committees == ["Food & Beverages", "Cosmetics & Beauty", "Medical & Quarantine Goods"]
    assert await page.locator("#upcoming .show-card").count() == 0


async def test_korean_browser_gets_korean_pages_and_the_switch_keeps_english(site, new_context):
    context = await new_context(locale="ko-KR")
    page = await open_page(context, site.at("/"))
    assert await page.locator("h1").text_content() == "라이브 쇼핑 편성표"
    assert await page.locator("html").get_attribute("lang") == "ko"
    assert "식품" in await page.locator(".committee").first.text_content()

    await page.locator('[data-lang="en"]').click()
    await page.wait_for_url(site.at("/"))
    assert await page.locator("h1").text_content() == "Live shopping schedule"
    await page.goto(site.at("/login"))
    assert await page.locator("h1").text_content() == "Sign in"


async def test_language_switch_only_returns_to_local_pages(site, new_context):
    page = await open_page(await new_context(), site.at("/lang/ko?next=https://evil.example/"))
    assert page.url == site.at("/")
    assert await page.locator("h1").text_content() == "라이브 쇼핑 편성표"


async def test_studio_redirects_an_anonymous_visitor_to_login_and_back(site, new_context):
    page = await open_page(await new_context(), site.at("/studio/1"))
    assert page.url == site.at("/login?next=/studio/1")
    await page.fill('input[name="email"]', "host@livemall.example")
    await page.fill('input[name="password"]', "livemall-demo")
    await page.click('button[type="submit"]')
    await page.wait_for_url(site.at("/studio/1"))
    assert await page.locator("#go-live").is_visible()


async def test_studio_and_admin_send_a_buyer_to_login(site, new_context):
    context = await new_context()
    await sign_in(context, site, "buyer@livemall.example")
    page = await open_page(context, site.at("/studio/1"))
    assert page.url == site.at("/login?next=/studio/1")
    assert "王芳" in await page.get_by_test_id("not-allowed").text_content()
    await page.goto(site.at("/admin"))
    assert page.url == site.at("/login?next=/admin")


async def test_coview_page_asks_an_anonymous_visitor_to_sign_in(site, new_context):
    page = await open_page(await new_context(), site.at("/coview/abcdefgh1234"))
    assert page.url == site.at("/login?next=/coview/abcdefgh1234")


async def test_unknown_show_is_a_404_page(site, new_context):
    page = await new_context()
    tab = await page.new_page()
    response = await tab.goto(site.at("/shows/999"))
    assert response.status == 404
    assert await tab.locator("h1").text_content() == "Not found"


async def test_login_with_a_wrong_password_says_so(site, new_context):
    page = await open_page(await new_context(), site.at("/login"))
    await page.fill('input[name="email"]', "buyer@livemall.example")
    await page.fill('input[name="password"]', "not-the-password")
    await page.click('button[type="submit"]')
    alert = page.locator(".form-error")
    await alert.wait_for()
    assert await alert.text_content() == "Wrong e-mail or password."
    assert page.url == site.at("/login")


async def test_registration_shows_the_apis_field_errors_next_to_the_fields(site, new_context):
    page = await open_page(await new_context(locale="ko-KR"), site.at("/register"))
    await page.fill('input[name="name"]', "Kim")
    await page.fill('input[name="email"]', "not-an-email")
    await page.fill('input[name="password"]', "short")
    await page.fill('input[name="country"]', "Korea")
    await page.click('button[type="submit"]')
    email_error = page.locator('.field-error[data-for="email"]')
    await email_error.wait_for(state="visible")
    assert await email_error.text_content() == "올바른 이메일 주소를 입력하세요."
    assert await page.locator('.field-error[data-for="password"]').text_content() == "8자에서 128자 사이로 입력하세요."
    assert await page.locator('.field-error[data-for="country"]').text_content() == "두 글자 코드 (예: KR)."
    assert await page.locator('.field-error[data-for="name"]').text_content() == ""
    assert await page.locator('input[name="email"]').get_attribute("aria-invalid") == "true"


async def test_registering_a_taken_email_marks_the_email_field(site, new_context):
    page = await open_page(await new_context(), site.at("/register"))
    await page.fill('input[name="name"]', "Someone")
    await page.fill('input[name="email"]', "buyer@livemall.example")
    await page.fill('input[name="password"]', "a-long-password")
    await page.fill('input[name="country"]', "kr")
    await page.click('button[type="submit"]')
    error = page.locator('.field-error[data-for="email"]')
    await error.wait_for(state="visible")
    assert await error.text_content() == "An account with this e-mail already exists."


async def test_registration_signs_in_and_returns_to_the_page(site, new_context):
    page = await open_page(await new_context(), site.at("/register?next=/shows/1"))
    await page.fill('input[name="name"]', "Nguyễn Văn An")
    await page.fill('input[name="email"]', "an@example.vn")
    await page.fill('input[name="password"]', "a-long-password")
    await page.fill('input[name="country"]', "vn")
    await page.click('button[type="submit"]')
    await page.wait_for_url(site.at("/shows/1"))
    assert await page.get_by_test_id("who").text_content() == "Nguyễn Văn An"


async def test_hostile_show_title_and_user_name_are_shown_as_text(site, new_context):
    hostile_title = '<img src=x onerror="window.pwned=1">Sale</script><script>window.pwned=2</script>'
    hostile_name = '<b onmouseover=alert(1)>"Eve"</b>&amp;'
    async with site.db.transaction() as session:
        eve = await create_user(session, email="eve@example.org", password="a-long-password", name=hostile_name,
                                role=Role.host, country="KR")
        show = Show(title=hostile_title, host_id=eve.id, scheduled_at=datetime.now(timezone.utc) + timedelta(days=1))
        session.add(show)
        await session.flush()
        show_id = show.id
    context = await new_context()
    await sign_in(context, site, "eve@example.org", "a-long-password")
    dialogs = []
    for path in ("/", f"/shows/{show_id}", f"/studio/{show_id}"):
        page = await open_page(context, site.at(path))
        page.on("dialog", lambda d: dialogs.append(d.message))
        assert hostile_title in await page.locator(f'text={hostile_title[:20]}').first.text_content()
        assert await page.get_by_test_id("who").text_content() == hostile_name
        assert await page.locator("main img, main b").count() == 0
        assert await page.evaluate("window.pwned") is None
    assert dialogs == []


@pytest.mark.parametrize("locale", ["en-US", "ko-KR", "ru-RU", "zh-CN", "vi-VN"])
async def test_every_page_fits_a_phone_screen(site, new_context, locale):
    # The widest states: a live show with an industrial product's quote form, a co-view
    # room with its invite link, the studio's line-up and the admin's tables and forms.
    from rooms.coview import create_room

    async with site.db.transaction() as session:
        show = await session.get(Show, 1)
        await shows.mark_live(session, show.id, datetime.now(timezone.utc), None)
        show.pinned_product_id = await session.scalar(select(Product.id).where(Product.name == "Mask Production Line"))
        admin = await session.scalar(select(User).where(User.role == Role.admin))
        code = (await create_room(session, show_id=1, owner=admin, at=datetime.now(timezone.utc), ttl=3600,
                                  member_limit=50)).code
    context = await new_context(viewport=PHONE, is_mobile=True, has_touch=True, locale=locale)
    await sign_in(context, site, "admin@livemall.example")
    # Each page with an element that shows it is in its widest state.
    paths = {"/": "#live .show-card", "/shows/1": "#quote-form", f"/coview/{code}": "#invite-link",
             "/studio/1": ".lineup li", "/admin": "#show-form .segment-fields", "/login": "form",
             "/register": "form", "/shows/999": "main h1"}
    for path, widest in paths.items():
        page = await open_page(context, site.at(path))
        await page.locator(widest).first.wait_for()
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{path} is {width}px wide on a {PHONE['width']}px screen"
        await page.close()


async def test_user_is_stored_with_the_hostile_name_unchanged(site):
    # The escaping above happens on output only: the stored name is what was typed.
    async with site.db.session() as session:
        names = list(await session.scalars(select(User.name)))
    assert "王芳" in names
