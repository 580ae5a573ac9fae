"""Product images: an admin's upload decoded, resized and stored; the gallery's order.

An upload is trusted for nothing. Its bytes are decoded by Pillow with only the JPEG, PNG
and WebP decoders allowed (never by its file name or Content-Type: an SVG, a GIF, an HTML
page called `x.jpg` are all refused), its pixel count is checked from the header before
anything is decompressed (a 50,000 × 50,000 PNG of a few kilobytes would otherwise take
gigabytes), its EXIF orientation is applied, its colours are brought to sRGB, and it is
re-encoded as WebP in a few sizes with no metadata at all (no GPS position, no camera
serial, no ICC profile, no XMP). The original is not kept.

The files are named by the SHA-256 of the uploaded bytes and the size
(`products/<hash>-medium.webp`): a name always means the same picture, so the pages may
cache them for a year, and the same upload for two products is stored once. Rows of
`product_images` say which product shows which picture in which place; a file is removed
once no row names its hash.

Where the files go is an `ImageStore`: a directory (`DiskImageStore`) or an S3-compatible
bucket (`S3ImageStore`); the HTTP side serves them from either (web/api_images.py).
Nothing here imports aiohttp.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from PIL import Image, ImageOps
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from orders.errors import Conflict, DomainError, Invalid, NotFound
from orders.models import Product, ProductImage

try:  # LittleCMS is part of Pillow's wheels; a build without it keeps the pixels as they are
    from PIL import ImageCms

    SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
except ImportError:  # pragma: no cover - depends on how Pillow was built
    ImageCms = None  # type: ignore[assignment]
    SRGB = None

# The long side of each size, in pixels: a list's thumbnail, the product card, a full
# screen on a phone. A smaller upload is never enlarged.
SIZES: dict[str, int] = {"small": 160, "medium": 480, "large": 1080}
FORMATS = ("JPEG", "PNG", "WEBP")  # the only decoders Pillow may use on an upload
WEBP_QUALITY = 82
MAX_IMAGES = 12  # pictures per product
URL_PREFIX = "/media/"  # where web/api_images.py serves the store's files
HASH_LENGTH = 64  # hex digits of SHA-256


class ImageTooLarge(DomainError):
    """More bytes than `image_max_bytes` (HTTP 413)."""

    code = "image_too_large"


class UnsupportedImage(Invalid):
    """Not a JPEG, PNG or WebP that decodes (HTTP 422 on `image`)."""

    code = "unsupported_image"


class ImageTooManyPixels(Invalid):
    """More pixels than `image_max_pixels`: a decompression bomb, or just too big (HTTP 422)."""

    code = "image_too_many_pixels"


class TooManyImages(Conflict):
    code = "too_many_images"


class ImageExists(Conflict):
    code = "image_exists"


class ImageStore(Protocol):
    """Where the resized files live. Names are `products/<hash>-<size>.webp`.
    Calls block (disk, or a blocking S3 client): the domain runs them in a thread."""

    def put(self, name: str, data: bytes) -> None: ...

    def remove(self, name: str) -> None: ...

    def get(self, name: str) -> bytes | None: ...


class DiskImageStore:
    """Files under a directory (`LIVEMALL_MEDIA_DIR`). A file is written under a temporary
    name and renamed, so a reader never gets half a picture."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def path(self, name: str) -> Path:
        return self.directory / name

    def put(self, name: str, data: bytes) -> None:
        target = self.path(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(temporary, 0o644)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def remove(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)

    def get(self, name: str) -> bytes | None:
        try:
            return self.path(name).read_bytes()
        except FileNotFoundError:
            return None


class S3ImageStore:
    """Files in an S3-compatible bucket, through the official client (boto3, an optional
    dependency: `pip install livemall[s3]`). The pages still load them from this site's
    `/media/` (web/api_images.py reads them back), so the bucket stays private and no
    page hot-links another host; every node sees every upload without a shared disk."""

    def __init__(self, client, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix

    @classmethod
    def connect(cls, *, bucket: str, endpoint_url: str = "", region: str = "", access_key: str = "",
                secret_key: str = "", prefix: str = "") -> S3ImageStore:
        import boto3
        from botocore.config import Config

        client = boto3.client(
            "s3",
            endpoint_url=endpoint_url or None,  # None: AWS itself
            region_name=region or None,
            aws_access_key_id=access_key or None,  # None: boto3's own chain (environment, instance role)
            aws_secret_access_key=secret_key or None,
            # A stuck store fails an upload or a picture in seconds, not a worker thread for minutes.
            config=Config(connect_timeout=5, read_timeout=20, retries={"max_attempts": 3, "mode": "standard"}),
        )
        return cls(client, bucket, prefix)

    def put(self, name: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.prefix + name, Body=data, ContentType="image/webp",
                               CacheControl="public, max-age=31536000, immutable")

    def remove(self, name: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.prefix + name)

    def get(self, name: str) -> bytes | None:
        try:
            reply = self.client.get_object(Bucket=self.bucket, Key=self.prefix + name)
        except self.client.exceptions.NoSuchKey:
            return None
        return reply["Body"].read()


def file_name(content_hash: str, size: str) -> str:
    return f"products/{content_hash}-{size}.webp"


def media_url(content_hash: str, size: str) -> str:
    return URL_PREFIX + file_name(content_hash, size)


# --- decoding and resizing (CPU work: callers run it in a thread) -----------------------

@dataclass(frozen=True)
class PreparedImage:
    content_hash: str
    files: dict[str, bytes]  # size name -> WebP bytes
    sizes: dict[str, list[int]]  # size name -> [width, height]


def _open(data: bytes, max_pixels: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that: refuse those too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooManyPixels("the image has too many pixels", field="image") from None
    except Exception:  # noqa: BLE001 - UnidentifiedImageError, and whatever a crafted header makes a parser raise
        raise UnsupportedImage("send a JPEG, PNG or WebP image", field="image") from None
    width, height = image.size
    if width < 1 or height < 1:
        raise UnsupportedImage("the image has no pixels", field="image")
    if width * height > max_pixels:
        # Checked from the header, before a single row is decompressed.
        raise ImageTooManyPixels(
            f"the image is {width} × {height} pixels; at most {max_pixels:,} pixels are taken", field="image")
    return image


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info)


def _in_srgb(image: Image.Image, alpha: bool) -> Image.Image:
    """RGB(A) pixels in sRGB: a camera's Display P3 or a CMYK profile is converted, not
    dropped (dropping it would dull or shift the colours once the profile is stripped)."""
    mode = "RGBA" if alpha else "RGB"
    profile = image.info.get("icc_profile")
    if profile and ImageCms is not None:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
            if image.mode not in ("RGB", "RGBA", "CMYK", "L"):
                image = image.convert(mode)
            converted = ImageCms.profileToProfile(image, source, SRGB, outputMode=mode)
            if converted is not None:
                return converted
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            pass  # a broken profile: keep the numbers as they are
    return image if image.mode == mode else image.convert(mode)


def prepare_image(data: bytes, *, max_pixels: int) -> PreparedImage:
    """Decode an upload and make its sizes. Raises UnsupportedImage or ImageTooManyPixels."""
    image = _open(data, max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            if image.format == "JPEG":
                # Let the JPEG decoder scale by 1/2, 1/4 or 1/8 while staying at least as
                # large as the largest size: a 48-megapixel photo decodes at a quarter of it.
                image.draft(None, (SIZES["large"], SIZES["large"]))
            image.load()
            alpha = _has_alpha(image)
            image = ImageOps.exif_transpose(image)
            image = _in_srgb(image, alpha)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooManyPixels("the image has too many pixels", field="image") from None
    except Exception:  # noqa: BLE001 - a cut-short file (OSError), and whatever crafted EXIF makes Pillow raise
        raise UnsupportedImage("the image is damaged or cut short", field="image") from None
    image.info = {}  # EXIF, XMP, ICC, comments: none of it goes on

    files: dict[str, bytes] = {}
    sizes: dict[str, list[int]] = {}
    width, height = image.size
    current = image
    for name, edge in sorted(SIZES.items(), key=lambda item: -item[1]):  # largest first
        scale = min(1.0, edge / max(width, height))
        target = (max(1, round(width * scale)), max(1, round(height * scale)))
        if target != current.size:
            # Each size from the one above it: as sharp, and far less work than from the original.
            current = current.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)
            current.info = {}
        buffer = io.BytesIO()
        current.save(buffer, "WEBP", quality=WEBP_QUALITY, method=4)
        files[name] = buffer.getvalue()
        sizes[name] = list(current.size)
    return PreparedImage(hashlib.sha256(data).hexdigest(), files, sizes)


# --- the gallery --------------------------------------------------------------------------

async def _product(session: AsyncSession, product_id: int) -> None:
    """The product exists; its row is locked (PostgreSQL) so two uploads count in turn."""
    found = await session.scalar(select(Product.id).where(Product.id == product_id).with_for_update())
    if found is None:
        raise NotFound(f"no product {product_id}")


async def images_of(session: AsyncSession, product_id: int) -> list[ProductImage]:
    rows = await session.scalars(
        select(ProductImage).where(ProductImage.product_id == product_id)
        .order_by(ProductImage.position, ProductImage.id))
    return list(rows)


async def add_image(
    session: AsyncSession, store: ImageStore, product_id: int, prepared: PreparedImage
) -> ProductImage:
    """Store a prepared upload's files and put it last in the product's gallery."""
    await _product(session, product_id)
    existing = await images_of(session, product_id)
    if any(image.content_hash == prepared.content_hash for image in existing):
        raise ImageExists("the product already has this image", field="image")
    if len(existing) >= MAX_IMAGES:
        raise TooManyImages(f"a product has at most {MAX_IMAGES} images; delete one first", field="image")
    # Files first: a row never names a file that is not there. A failed commit leaves
    # files no row names, which a later upload of the same picture simply reuses.
    await asyncio.to_thread(_put_all, store, prepared)
    image = ProductImage(
        product_id=product_id,
        position=max((i.position for i in existing), default=-1) + 1,
        content_hash=prepared.content_hash,
        sizes=prepared.sizes,
    )
    session.add(image)
    try:
        await session.flush()
    except IntegrityError:  # the same picture uploaded twice at once
        raise ImageExists("the product already has this image", field="image") from None
    return image


def _put_all(store: ImageStore, prepared: PreparedImage) -> None:
    for size, data in prepared.files.items():
        store.put(file_name(prepared.content_hash, size), data)


async def remove_image(session: AsyncSession, product_id: int, image_id: int) -> str:
    """Take a picture out of a product's gallery; returns its hash, whose files
    `remove_unused_files` deletes once the transaction is committed."""
    await _product(session, product_id)
    image = await session.scalar(
        select(ProductImage).where(ProductImage.id == image_id, ProductImage.product_id == product_id))
    if image is None:
        raise NotFound(f"product {product_id} has no image {image_id}")
    await session.execute(delete(ProductImage).where(ProductImage.id == image.id))
    rest = await images_of(session, product_id)
    for position, other in enumerate(rest):
        other.position = position
    await session.flush()
    return image.content_hash


async def remove_unused_files(session: AsyncSession, store: ImageStore, content_hash: str) -> bool:
    """Delete a picture's files if no product shows it any more (another product may
    have been given the same upload). Returns whether they were deleted. (An upload of
    the very same bytes to another product committing between this count and the
    deletion would lose its files; the admin uploads it again. Not worth a lock.)"""
    used = await session.scalar(
        select(func.count()).select_from(ProductImage).where(ProductImage.content_hash == content_hash))
    if used:
        return False

    def remove_all() -> None:
        for size in SIZES:
            store.remove(file_name(content_hash, size))

    await asyncio.to_thread(remove_all)
    return True


async def reorder_images(session: AsyncSession, product_id: int, image_ids: list[int]) -> list[ProductImage]:
    """Put a product's pictures in the given order; the list names each of them once."""
    await _product(session, product_id)
    images = await images_of(session, product_id)
    by_id = {image.id: image for image in images}
    if len(image_ids) != len(set(image_ids)) or set(image_ids) != set(by_id):
        raise Invalid("name each of the product's images once, in the new order", field="image_ids",
                      image_ids=[image.id for image in images])
    for position, image_id in enumerate(image_ids):
        by_id[image_id].position = position
    await session.flush()
    return [by_id[image_id] for image_id in image_ids]


def image_public(image: ProductImage) -> dict:
    """One picture as the pages get it: a URL per size, and the large size's dimensions
    (the aspect ratio, so a page can reserve the space before the picture arrives)."""
    width, height = image.sizes.get("large", [0, 0])
    return {
        "id": image.id,
        **{size: media_url(image.content_hash, size) for size in SIZES},
        "width": width,
        "height": height,
    }
