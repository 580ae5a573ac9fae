"""Product images over HTTP (web/api_images.py): the admin's multipart upload, larger
than the app's 256 KiB body limit but bounded by its own; refusals as JSON with nothing
stored; the files served for good (immutable, nosniff); the URLs in the product, show
and pin payloads; delete and reorder.

Demo facts: product 1 green tea (in show 1's line-up), 5 snail essence.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import FormData
from PIL import Image
from sqlalchemy import update

from orders.models import Show
from tests.orders.conftest import open_shop
from tests.orders.test_product_images import SVG, photo_jpeg, png_header, s3_endpoint, transparent_png  # noqa: F401
from tests.pages.conftest import browser, new_context  # noqa: F401 - the admin page's test drives Chromium
from web.api_images import IMAGE_STORE

GREEN_TEA, SNAIL = 1, 5
CAP = 1024 * 1024  # image_max_bytes in these tests


@pytest.fixture
async def shop(aiohttp_client, sqlite_url: str, tmp_path: Path):
    return await open_shop(aiohttp_client, sqlite_url, tmp_path, media_dir=tmp_path / "media", image_max_bytes=CAP)


def media(shop) -> set[str]:
    folder = shop.app[IMAGE_STORE].directory / "products"
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


def form(data: bytes, filename: str = "photo.jpg", content_type: str = "image/jpeg") -> FormData:
    body = FormData()
    body.add_field("image", data, filename=filename, content_type=content_type)
    return body


async def upload(shop, data: bytes, who: str | None = "admin", product_id: int = GREEN_TEA, **kw):
    headers = await shop.headers(who) if who else {}
    response = await shop.client.post(f"/api/admin/products/{product_id}/images", data=form(data, **kw), headers=headers)
    return response.status, await response.json()


def noisy_jpeg(side: int = 600) -> bytes:
    """A photo of noise: it does not compress, so it weighs more than 256 KiB."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


async def test_an_admin_uploads_a_photo_larger_than_the_json_body_limit(shop):
    data = noisy_jpeg()
    assert 256 * 1024 < len(data) < CAP

    status, reply = await upload(shop, data)

    assert status == 201, reply
    image = reply["image"]
    assert (image["width"], image["height"]) == (600, 600)
    assert [i["id"] for i in reply["images"]] == [image["id"]]
    assert len(media(shop)) == 3


async def test_served_sizes_are_upright_cached_for_good_and_not_sniffed(shop):
    status, reply = await upload(shop, photo_jpeg(1600, 1200, orientation=6))
    assert status == 201, reply

    response = await shop.client.get(reply["image"]["large"])

    assert response.status == 200
    assert response.headers["Content-Type"] == "image/webp"
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    picture = Image.open(io.BytesIO(await response.read()))
    assert picture.size == (810, 1080)
    assert len(picture.getexif()) == 0


async def test_a_png_is_taken_whatever_name_and_type_it_is_sent_with(shop):
    status, reply = await upload(shop, transparent_png(), filename="scan.gif", content_type="application/octet-stream")

    assert status == 201, reply
    assert (reply["image"]["width"], reply["image"]["height"]) == (300, 200)


@pytest.mark.parametrize("data, filename, content_type, error", [
    (b"%PDF-1.4 not a picture", "photo.jpg", "image/jpeg", "unsupported_image"),
    (SVG, "logo.svg", "image/svg+xml", "unsupported_image"),
    (png_header(60_000, 60_000), "bomb.png", "image/png", "image_too_many_pixels"),
    (png_header(8000, 6000), "big.png", "image/png", "image_too_many_pixels"),
], ids=["not-an-image", "svg", "bomb", "too-many-pixels"])
async def test_what_is_not_a_usable_picture_is_422_and_nothing_is_stored(shop, data, filename, content_type, error):
    status, reply = await upload(shop, data, filename=filename, content_type=content_type)

    assert (status, reply["error"], reply["field"]) == (422, error, "image")
    assert media(shop) == set()
    product = await (await shop.client.get(f"/api/products/{GREEN_TEA}")).json()
    assert product["images"] == []


async def test_an_upload_over_the_cap_is_413_before_it_is_read(shop):
    status, reply = await upload(shop, b"\xff\xd8" + b"\x00" * (CAP + 50_000))

    assert (status, reply["error"], reply["max_bytes"]) == (413, "image_too_large", CAP)
    assert media(shop) == set()


async def test_a_chunked_upload_over_the_cap_is_cut_off_at_the_cap(shop):
    boundary = "livemall-test-boundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.jpg\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode()

    async def body():  # no Content-Length: the server must count
        yield head
        for _ in range(CAP // 65536 + 4):
            yield b"\x00" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    headers = {**await shop.headers("admin"), "Content-Type": f"multipart/form-data; boundary={boundary}"}
    response = await shop.client.post(f"/api/admin/products/{GREEN_TEA}/images", data=body(), headers=headers)

    assert response.status == 413
    assert (await response.json())["error"] == "image_too_large"
    assert media(shop) == set()


async def test_only_an_admin_may_upload(shop):
    # Signed out first: signing in gives the test client a session cookie.
    for who, status in ((None, 401), ("buyer", 403), ("host", 403)):
        got, reply = await upload(shop, transparent_png(), who=who)
        assert got == status and "error" in reply, who
    assert media(shop) == set()


async def test_json_instead_of_a_file_is_400(shop):
    response = await shop.client.post(f"/api/admin/products/{GREEN_TEA}/images", json={"image": "x"},
                                      headers=await shop.headers("admin"))
    assert response.status == 400
    assert (await response.json())["error"] == "bad_request"


async def test_product_show_and_pin_payloads_carry_the_urls_and_the_description(shop):
    _, first = await upload(shop, transparent_png(300, 200))
    _, second = await upload(shop, photo_jpeg(800, 600, orientation=1))
    async with shop.db.transaction() as session:
        await session.execute(update(Show).where(Show.id == 1).values(pinned_product_id=GREEN_TEA))

    product = await (await shop.client.get(f"/api/products/{GREEN_TEA}")).json()
    listed = {p["id"]: p for p in await (await shop.client.get("/api/products")).json()}
    show = await (await shop.client.get("/api/shows/1")).json()

    urls = [{k: i[k] for k in ("small", "medium", "large")} for i in second["images"]]
    assert [{k: i[k] for k in ("small", "medium", "large")} for i in product["images"]] == urls
    assert listed[GREEN_TEA]["images"] == product["images"] and listed[SNAIL]["images"] == []
    assert product["image_url"] == first["image"]["medium"]
    assert show["pin"]["images"] == product["images"]
    assert show["pin"]["description"] == "First-flush leaves from Jeju island."
    for url in urls[1].values():
        assert (await shop.client.get(url)).status == 200


async def test_the_pinned_product_event_carries_images_and_description(shop):
    from orders.catalog import get_product
    from orders.models import utcnow
    from orders.shows import get_show
    from rooms.stage import product_event

    _, reply = await upload(shop, transparent_png())
    async with shop.db.session() as session:
        event = await product_event(session, await get_show(session, 1), await get_product(session, GREEN_TEA), utcnow())

    assert event["images"] == reply["images"]
    assert event["image_url"] == reply["image"]["medium"]
    assert event["description"] == "First-flush leaves from Jeju island."


async def test_admin_reorders_and_deletes_pictures(shop):
    ids = []
    for data in (transparent_png(300, 200), transparent_png(200, 300), photo_jpeg(400, 300, orientation=1)):
        status, reply = await upload(shop, data, product_id=SNAIL)
        assert status == 201, reply
        ids.append(reply["image"]["id"])
    admin = await shop.headers("admin")

    response = await shop.client.put(f"/api/admin/products/{SNAIL}/images/order",
                                     json={"image_ids": [ids[2], ids[0], ids[1]]}, headers=admin)
    assert response.status == 200
    product = await (await shop.client.get(f"/api/products/{SNAIL}")).json()
    assert [i["id"] for i in product["images"]] == [ids[2], ids[0], ids[1]]
    assert product["image_url"] == product["images"][0]["medium"]

    gone = product["images"][0]["large"]
    response = await shop.client.delete(f"/api/admin/products/{SNAIL}/images/{ids[2]}", headers=admin)
    assert response.status == 200
    assert [i["id"] for i in (await response.json())["images"]] == [ids[0], ids[1]]
    assert (await shop.client.get(gone)).status == 404
    assert len(media(shop)) == 6


async def test_reorder_and_delete_refusals(shop):
    _, reply = await upload(shop, transparent_png(), product_id=SNAIL)
    admin = await shop.headers("admin")
    image_id = reply["image"]["id"]

    bad_order = await shop.client.put(f"/api/admin/products/{SNAIL}/images/order", json={"image_ids": [image_id, 77]},
                                      headers=admin)
    assert (bad_order.status, (await bad_order.json())["field"]) == (422, "image_ids")
    other_product = await shop.client.delete(f"/api/admin/products/{GREEN_TEA}/images/{image_id}", headers=admin)
    assert other_product.status == 404
    as_buyer = await shop.client.delete(f"/api/admin/products/{SNAIL}/images/{image_id}",
                                        headers=await shop.headers("buyer"))
    assert as_buyer.status == 403
    assert len(media(shop)) == 3


async def test_unknown_media_names_are_404(shop):
    for name in ("nothing.webp", "..%2F..%2Fetc%2Fpasswd", "a" * 64 + "-huge.webp", "0" * 64 + "-small.webp"):
        assert (await shop.client.get(f"/media/products/{name}")).status == 404, name


# --- the admin page, in Chromium ---------------------------------------------------------------

@pytest_asyncio.fixture(loop_scope="session")
async def image_site(sqlite_template, tmp_path):
    """The whole app on a loopback port, its media in the test's own directory."""
    from aiohttp import web

    from orders.db import Database
    from orders.demo import load_demo
    from tests.conftest import free_port, fresh_sqlite, test_settings
    from tests.pages.conftest import Site
    from web.app import create_app
    from web.appkeys import DB

    url = fresh_sqlite(sqlite_template, tmp_path)
    database = Database(url)
    async with database.transaction() as session:
        await load_demo(session)
    await database.close()
    app = create_app(test_settings(url, recordings_dir=tmp_path / "recordings", media_dir=tmp_path / "media"))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield Site(f"http://127.0.0.1:{port}", app, app[DB])
    finally:
        await runner.cleanup()


@pytest.mark.asyncio(loop_scope="session")
async def test_admin_page_uploads_shows_reorders_and_deletes_pictures(browser, image_site, new_context, tmp_path):
    from tests.pages.conftest import open_page, sign_in

    site = image_site
    context = await new_context()
    await sign_in(context, site, "admin@livemall.example")
    page = await open_page(context, site.at("/admin"))
    images = page.locator("#image-list img")
    (tmp_path / "notes.txt").write_bytes(b"not a picture")
    (tmp_path / "a.png").write_bytes(transparent_png(300, 200))
    (tmp_path / "b.jpg").write_bytes(photo_jpeg(400, 300, orientation=1))

    await page.select_option("#image-form select[name=product_id]", str(SNAIL))
    await page.set_input_files("#image-form input[name=image]", str(tmp_path / "notes.txt"))
    await page.click("#image-form button[type=submit]")
    refusal = page.locator('#image-form .field-error[data-for="image"]')
    await refusal.filter(has_text="JPEG, PNG or WebP").wait_for()
    for name in ("a.png", "b.jpg"):
        count = await images.count()
        await page.set_input_files("#image-form input[name=image]", str(tmp_path / name))
        await page.click("#image-form button[type=submit]")
        await images.nth(count).wait_for()

    sources = [await images.nth(i).get_attribute("src") for i in range(2)]
    assert all(src.startswith("/media/products/") and src.endswith("-small.webp") for src in sources)
    assert await images.nth(0).evaluate("img => img.complete && img.naturalWidth") == 160

    await page.locator("#image-list li").nth(1).get_by_role("button", name="Move earlier").click()
    await page.wait_for_function(
        "src => document.querySelector('#image-list img').getAttribute('src') === src", arg=sources[1])
    product = await (await context.request.get(site.at(f"/api/products/{SNAIL}"))).json()
    assert [i["small"] for i in product["images"]] == [sources[1], sources[0]]

    await page.locator("#image-list li").nth(0).get_by_role("button", name="Delete").click()
    await page.wait_for_function("() => document.querySelectorAll('#image-list img').length === 1")
    product = await (await context.request.get(site.at(f"/api/products/{SNAIL}"))).json()
    assert [i["small"] for i in product["images"]] == [sources[0]]


async def test_with_an_s3_store_pictures_are_served_from_the_bucket_by_this_site(aiohttp_client, sqlite_url, tmp_path,
                                                                                 s3_endpoint):
    from tests.orders.test_product_images import bucket_keys

    bucket = "lm-images-api"
    shop = await open_shop(aiohttp_client, sqlite_url, tmp_path, media_store="s3", s3_bucket=bucket,
                           s3_endpoint_url=s3_endpoint, s3_region="us-east-1", s3_access_key="test",
                           s3_secret_key="test", media_dir=tmp_path / "unused")
    store = shop.app[IMAGE_STORE]
    store.client.create_bucket(Bucket=bucket)

    status, reply = await upload(shop, transparent_png(300, 200))
    assert status == 201, reply
    response = await shop.client.get(reply["image"]["medium"])

    assert response.status == 200
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert Image.open(io.BytesIO(await response.read())).size == (300, 200)
    assert len(bucket_keys(store)) == 3 and not (tmp_path / "unused").exists()
    again = await shop.client.get(reply["image"]["medium"], headers={"If-None-Match": response.headers["ETag"]})
    assert again.status == 304


async def test_the_readme_demo_gives_every_product_a_picture_the_site_serves(aiohttp_client, tmp_path):
    """`livemall demo` (the README's first command) draws the pictures into ./media."""
    import subprocess
    import sys

    from tests.conftest import test_settings
    from web.app import create_app

    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEMALL_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    subprocess.run([sys.executable, "-m", "web.cli", "demo"], cwd=tmp_path, env=env, check=True,
                   capture_output=True, timeout=120)
    app = create_app(test_settings(f"sqlite+aiosqlite:///{tmp_path}/livemall.db", media_dir=tmp_path / "media",
                                   recordings_dir=tmp_path / "recordings"))
    client = await aiohttp_client(app)

    products = await (await client.get("/api/products")).json()

    assert products and all(p["images"] and p["image_url"] == p["images"][0]["medium"] for p in products)
    response = await client.get(products[0]["images"][0]["large"])
    assert response.status == 200 and response.headers["Content-Type"] == "image/webp"
