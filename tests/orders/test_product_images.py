"""Product images in the domain (orders/product_images.py): what an upload becomes (sizes,
orientation, no metadata, sRGB), what is refused before anything is stored, and the
gallery on SQLite and PostgreSQL (order, delete, shared files, the demo's pictures).

Demo facts: product 1 green tea, 2 yuja tea (both food), 5 snail essence.
"""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageCms

from orders import product_images
from orders.catalog import get_product, product_public
from orders.demo import load_demo
from orders.product_images import (
    DiskImageStore, ImageExists, ImageTooManyPixels, UnsupportedImage, prepare_image,
)

GREEN_TEA, YUJA_TEA, SNAIL = 1, 2, 5
LIMIT = 40_000_000
ORIENTATION, MAKE, GPS = 0x0112, 0x010F, 0x8825


def photo_jpeg(width: int = 1600, height: int = 1200, orientation: int = 6) -> bytes:
    """A red photo with a blue band along its top edge, as a camera held upright stores
    it (sideways, with EXIF orientation 6: turn 90° clockwise to show), with a camera
    make and a GPS position in its EXIF."""
    picture = Image.new("RGB", (width, height), (220, 20, 20))
    picture.paste((20, 20, 220), (0, 0, width, height // 10))
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    exif[MAKE] = "SecretCam"
    exif[GPS] = {1: "N", 2: (43.0, 7.0, 0.0)}  # Vladivostok
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", exif=exif.tobytes(), quality=92)
    return buffer.getvalue()


def transparent_png(width: int = 300, height: int = 200) -> bytes:
    picture = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    picture.paste((0, 160, 0, 255), (0, 0, width // 2, height))
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return buffer.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims width × height grey pixels and holds a few rows of zeros: the
    shape of a decompression bomb (its rows, all zero, would deflate to nothing)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = zlib.compress(b"\x00" * (width + 1) * 4)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", rows) + chunk(b"IEND", b""))


SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script></svg>'


def decoded(data: bytes) -> Image.Image:
    picture = Image.open(io.BytesIO(data))
    picture.load()
    return picture


def close(pixel, colour, tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour))


# --- what an upload becomes -----------------------------------------------------------------

def test_a_sideways_photo_is_turned_upright_in_three_sizes():
    prepared = prepare_image(photo_jpeg(1600, 1200, orientation=6), max_pixels=LIMIT)

    assert prepared.sizes == {"large": [810, 1080], "medium": [360, 480], "small": [120, 160]}
    for size, (width, height) in prepared.sizes.items():
        picture = decoded(prepared.files[size])
        assert (picture.format, picture.size) == ("WEBP", (width, height))
    large = decoded(prepared.files["large"]).convert("RGB")
    # The band along the stored top edge is along the right edge once turned clockwise.
    assert close(large.getpixel((800, 540)), (20, 20, 220))
    assert close(large.getpixel((10, 540)), (220, 20, 20))


def test_the_sizes_carry_no_metadata():
    prepared = prepare_image(photo_jpeg(), max_pixels=LIMIT)

    for data in prepared.files.values():
        picture = decoded(data)
        assert len(picture.getexif()) == 0
        assert not {"exif", "icc_profile", "xmp", "XML:com.adobe.xmp"} & set(picture.info)
        assert b"SecretCam" not in data and b"Exif" not in data


def test_a_png_keeps_its_transparency_and_is_never_enlarged():
    prepared = prepare_image(transparent_png(300, 200), max_pixels=LIMIT)

    assert prepared.sizes == {"large": [300, 200], "medium": [300, 200], "small": [160, 107]}
    picture = decoded(prepared.files["large"]).convert("RGBA")
    assert picture.getpixel((250, 100))[3] == 0
    assert close(picture.getpixel((50, 100)), (0, 160, 0, 255))


def test_an_embedded_colour_profile_is_applied_then_dropped():
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (255, 0, 0)).save(buffer, "JPEG", icc_profile=srgb.tobytes(), quality=95)

    prepared = prepare_image(buffer.getvalue(), max_pixels=LIMIT)

    picture = decoded(prepared.files["small"])
    assert "icc_profile" not in picture.info
    assert close(picture.convert("RGB").getpixel((32, 32)), (255, 0, 0), tolerance=12)


def test_the_hash_is_the_uploads_sha256():
    data = transparent_png()

    assert prepare_image(data, max_pixels=LIMIT).content_hash == hashlib.sha256(data).hexdigest()


# --- what is refused ----------------------------------------------------------------------

@pytest.mark.parametrize("data", [
    b"just some text, called photo.jpg",
    SVG,
    photo_jpeg()[:2000],  # cut short
], ids=["text", "svg", "truncated-jpeg"])
def test_what_is_not_a_jpeg_png_or_webp_is_refused(data):
    with pytest.raises(UnsupportedImage) as refused:
        prepare_image(data, max_pixels=LIMIT)
    assert refused.value.detail["field"] == "image"


def test_a_gif_is_refused_even_though_pillow_reads_gifs():
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buffer, "GIF")
    with pytest.raises(UnsupportedImage):
        prepare_image(buffer.getvalue(), max_pixels=LIMIT)


@pytest.mark.parametrize("width, height", [(8000, 6000), (60_000, 60_000)], ids=["over-our-limit", "over-pillows"])
def test_a_decompression_bomb_is_refused_from_its_header(width, height):
    bomb = png_header(width, height)
    assert len(bomb) < 100_000

    with pytest.raises(ImageTooManyPixels) as refused:
        prepare_image(bomb, max_pixels=LIMIT)
    assert refused.value.code == "image_too_many_pixels"


# --- the gallery, on both databases ----------------------------------------------------------

@pytest.fixture(scope="module")
def pictures() -> list[product_images.PreparedImage]:
    return [prepare_image(transparent_png(40 + i, 30), max_pixels=LIMIT) for i in range(3)]


@pytest.fixture
async def shop_db(db):
    async with db.transaction() as session:
        await load_demo(session)
    return db


def stored(store: DiskImageStore) -> set[str]:
    folder = store.directory / "products"
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


async def add_all(db, store, product_id, prepared):
    async with db.transaction() as session:
        return [(await product_images.add_image(session, store, product_id, p)).id for p in prepared]


async def payload(db, product_id):
    async with db.session() as session:
        return product_public(await get_product(session, product_id))


async def test_pictures_are_listed_in_upload_order_with_a_url_per_size(shop_db, tmp_path, pictures):
    store = DiskImageStore(tmp_path / "media")

    ids = await add_all(shop_db, store, GREEN_TEA, pictures)

    product = await payload(shop_db, GREEN_TEA)
    assert [i["id"] for i in product["images"]] == ids
    first = product["images"][0]
    assert first["medium"] == f"/media/products/{pictures[0].content_hash}-medium.webp"
    assert (first["width"], first["height"]) == (40, 30)
    assert product["image_url"] == first["medium"]
    assert product["description"] == "First-flush leaves from Jeju island."
    assert len(stored(store)) == 9


async def test_reordering_changes_the_main_picture(shop_db, tmp_path, pictures):
    store = DiskImageStore(tmp_path / "media")
    a, b, c = await add_all(shop_db, store, GREEN_TEA, pictures)

    async with shop_db.transaction() as session:
        await product_images.reorder_images(session, GREEN_TEA, [c, a, b])

    product = await payload(shop_db, GREEN_TEA)
    assert [i["id"] for i in product["images"]] == [c, a, b]
    assert product["image_url"] == product["images"][0]["medium"]


async def test_a_reorder_must_name_each_picture_once(shop_db, tmp_path, pictures):
    store = DiskImageStore(tmp_path / "media")
    a, b, c = await add_all(shop_db, store, GREEN_TEA, pictures)

    for wrong in ([a, b], [a, b, c, c], [a, b, 999]):
        async with shop_db.transaction() as session:
            with pytest.raises(product_images.Invalid) as refused:
                await product_images.reorder_images(session, GREEN_TEA, wrong)
        assert refused.value.detail["field"] == "image_ids"


async def test_deleting_a_picture_closes_the_gap_and_removes_its_files(shop_db, tmp_path, pictures):
    store = DiskImageStore(tmp_path / "media")
    a, b, c = await add_all(shop_db, store, GREEN_TEA, pictures)

    async with shop_db.transaction() as session:
        gone = await product_images.remove_image(session, GREEN_TEA, b)
    async with shop_db.transaction() as session:
        assert await product_images.remove_unused_files(session, store, gone)

    async with shop_db.session() as session:
        assert [(i.id, i.position) for i in await product_images.images_of(session, GREEN_TEA)] == [(a, 0), (c, 1)]
    assert not any(name.startswith(gone) for name in stored(store))
    assert len(stored(store)) == 6


async def test_files_shared_with_another_product_stay_until_the_last_one_goes(shop_db, tmp_path, pictures):
    store = DiskImageStore(tmp_path / "media")
    [tea] = await add_all(shop_db, store, GREEN_TEA, pictures[:1])
    [yuja] = await add_all(shop_db, store, YUJA_TEA, pictures[:1])

    async with shop_db.transaction() as session:
        gone = await product_images.remove_image(session, GREEN_TEA, tea)
    async with shop_db.transaction() as session:
        assert not await product_images.remove_unused_files(session, store, gone)
    assert len(stored(store)) == 3
    assert (await payload(shop_db, YUJA_TEA))["images"][0]["id"] == yuja


async def test_the_same_picture_twice_for_one_product_is_refused(shop_db, tmp_path, pictures):
    store = DiskImageStore(tmp_path / "media")
    await add_all(shop_db, store, SNAIL, pictures[:1])

    with pytest.raises(ImageExists):
        await add_all(shop_db, store, SNAIL, pictures[:1])


async def test_a_product_holds_at_most_max_images(shop_db, tmp_path, pictures, monkeypatch):
    monkeypatch.setattr(product_images, "MAX_IMAGES", 2)
    store = DiskImageStore(tmp_path / "media")
    await add_all(shop_db, store, SNAIL, pictures[:2])

    with pytest.raises(product_images.TooManyImages):
        await add_all(shop_db, store, SNAIL, pictures[2:])
    assert len((await payload(shop_db, SNAIL))["images"]) == 2


async def test_a_picture_for_an_unknown_product_stores_nothing(shop_db, tmp_path, pictures):
    store = DiskImageStore(tmp_path / "media")

    with pytest.raises(product_images.NotFound):
        await add_all(shop_db, store, 9999, pictures[:1])
    assert stored(store) == set()


async def test_the_demo_draws_pictures_for_every_product_once(sqlite_url, tmp_path):
    from orders.db import Database

    store = DiskImageStore(tmp_path / "media")
    database = Database(sqlite_url)
    try:
        for _ in range(2):  # loading again adds nothing
            async with database.transaction() as session:
                await load_demo(session, images=store)
        async with database.session() as session:
            counts = [len(product_public(await get_product(session, pid))["images"]) for pid in range(1, 11)]
    finally:
        await database.close()
    assert all(count >= 1 for count in counts) and max(counts) == 2
    assert len(stored(store)) == 3 * sum(counts)


# --- an S3-compatible store: moto's S3 server on loopback, the real boto3 client ----------------

@pytest.fixture(scope="module")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    from tests.conftest import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def s3_store(endpoint: str, bucket: str) -> product_images.S3ImageStore:
    store = product_images.S3ImageStore.connect(bucket=bucket, endpoint_url=endpoint, region="us-east-1",
                                                access_key="test", secret_key="test", prefix="shop/")
    store.client.create_bucket(Bucket=bucket)
    return store


def bucket_keys(store: product_images.S3ImageStore) -> set[str]:
    reply = store.client.list_objects_v2(Bucket=store.bucket)
    return {item["Key"] for item in reply.get("Contents", [])}


async def test_an_s3_store_keeps_the_files_until_the_picture_is_deleted(sqlite_url, s3_endpoint, pictures):
    from orders.db import Database

    store = s3_store(s3_endpoint, "lm-images-domain")
    database = Database(sqlite_url)
    try:
        async with database.transaction() as session:
            await load_demo(session)
        [image_id] = await add_all(database, store, GREEN_TEA, pictures[:1])
        digest = pictures[0].content_hash
        assert bucket_keys(store) == {f"shop/products/{digest}-{size}.webp" for size in ("small", "medium", "large")}
        head = store.client.head_object(Bucket=store.bucket, Key=f"shop/products/{digest}-small.webp")
        assert head["ContentType"] == "image/webp" and "immutable" in head["CacheControl"]
        assert store.get(f"products/{digest}-small.webp") == pictures[0].files["small"]

        async with database.transaction() as session:
            gone = await product_images.remove_image(session, GREEN_TEA, image_id)
        async with database.transaction() as session:
            await product_images.remove_unused_files(session, store, gone)
    finally:
        await database.close()
    assert bucket_keys(store) == set()
    assert store.get(f"products/{digest}-small.webp") is None
