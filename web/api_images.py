"""Routes: product images — the admin's upload, delete and reorder, and the files themselves.

The upload is the one request body larger than `max_request_bytes` (256 KiB): it is read
here from the multipart stream, part by part, counting bytes against `image_max_bytes`
and within `image_upload_timeout`, never with `request.post()`/`read()` (those obey the
app's `client_max_size`). A declared Content-Length over the cap is refused before a byte
of the body is read. Decoding and resizing run in a thread, at most `DECODERS` at once
(each may hold a decoded picture of up to `image_max_pixels` in memory).

`GET /media/products/<hash>-<size>.webp` serves the store's files. A name means one
picture for ever (orders/product_images.py), so they are cached for a year as
`immutable`; `nosniff` (web/headers.py) keeps a browser from reading one as anything but
an image.
"""

from __future__ import annotations

import asyncio
import re
from typing import Annotated

from aiohttp import BodyPartReader, web
from pydantic import Field

from orders import product_images
from orders.errors import DomainError
from orders.models import Role
from orders.product_images import DiskImageStore, ImageStore, ImageTooLarge, S3ImageStore, UnsupportedImage
from web import errors
from web.appkeys import DB, SETTINGS
from web.auth import require_user
from web.errors import BadRequest, json_response
from web.settings import Settings
from web.validation import Body, Id, int_param, parse_body

IMAGE_STORE = web.AppKey("image_store", ImageStore)
_DECODING = web.AppKey("image_decoding", asyncio.Semaphore)
DECODERS = 2  # uploads decoded at once per process (one per core of a small node)
MULTIPART_SLACK = 16 * 1024  # boundaries and part headers around the file in a Content-Length
CHUNK = 64 * 1024
CACHE_FOREVER = "public, max-age=31536000, immutable"
_FILE = re.compile(r"^[0-9a-f]{64}-(?:small|medium|large)\.webp$")


# The one route that reads its own body (for a middleware that pre-reads bodies under
# client_max_size, such as a body timeout: leave these requests to the route, which bounds
# their size and time itself).
UPLOAD_PATH = re.compile(r"^/api/admin/products/[0-9]+/images$")


def streams_its_body(request: web.Request) -> bool:
    return request.method == "POST" and UPLOAD_PATH.match(request.path) is not None


class UploadTimeout(DomainError):
    code = "upload_timeout"


errors.STATUS[ImageTooLarge] = 413
errors.STATUS[UploadTimeout] = 408

routes = web.RouteTableDef()


class ImageOrderIn(Body):
    image_ids: Annotated[list[Id], Field(max_length=product_images.MAX_IMAGES)]


def _images(images) -> dict:
    return {"images": [product_images.image_public(image) for image in images]}


async def _read_upload(request: web.Request, limit: int) -> bytes:
    """The bytes of the one file part named `image`, at most `limit` of them."""
    if not request.content_type.startswith("multipart/form-data"):
        raise BadRequest("send the image as multipart/form-data, in a field named image")
    data: bytes | None = None
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or part.name != "image" or data is not None:
                raise BadRequest("send one file, in a field named image, and nothing else")
            received = bytearray()
            while chunk := await part.read_chunk(CHUNK):
                received += chunk
                if len(received) > limit:
                    raise ImageTooLarge(f"an image may have at most {limit:,} bytes", field="image",
                                        max_bytes=limit)
            data = bytes(received)
    except (ValueError, AssertionError) as exc:  # a malformed multipart body (aiohttp raises these)
        raise BadRequest(f"the multipart body is malformed: {exc}") from None
    if not data:
        raise UnsupportedImage("no image was sent: put the file in a field named image", field="image")
    return data


@routes.post("/api/admin/products/{product_id}/images")
async def upload_image(request: web.Request) -> web.Response:
    """`201 {image, images}`: the picture, resized, last in the product's gallery."""
    await require_user(request, Role.admin)  # before a byte of the body is read
    product_id = int_param(request, "product_id")
    settings = request.app[SETTINGS]
    limit = settings.image_max_bytes
    if request.content_length is not None and request.content_length > limit + MULTIPART_SLACK:
        raise ImageTooLarge(f"an image may have at most {limit:,} bytes", field="image", max_bytes=limit)
    try:
        async with asyncio.timeout(settings.image_upload_timeout):
            data = await _read_upload(request, limit)
    except TimeoutError:
        raise UploadTimeout(f"the upload took longer than {settings.image_upload_timeout:g} s") from None
    async with request.app[_DECODING]:
        prepared = await asyncio.to_thread(
            product_images.prepare_image, data, max_pixels=settings.image_max_pixels)
    async with request.app[DB].transaction() as session:
        image = await product_images.add_image(session, request.app[IMAGE_STORE], product_id, prepared)
        result = {"image": product_images.image_public(image),
                  **_images(await product_images.images_of(session, product_id))}
    return json_response(result, status=201)


@routes.delete("/api/admin/products/{product_id}/images/{image_id}")
async def delete_image(request: web.Request) -> web.Response:
    """`{images}`: the gallery without it. Its files go once no product shows the picture."""
    await require_user(request, Role.admin)
    product_id = int_param(request, "product_id")
    image_id = int_param(request, "image_id")
    async with request.app[DB].transaction() as session:
        content_hash = await product_images.remove_image(session, product_id, image_id)
        result = _images(await product_images.images_of(session, product_id))
    async with request.app[DB].transaction() as session:
        await product_images.remove_unused_files(session, request.app[IMAGE_STORE], content_hash)
    return json_response(result)


@routes.put("/api/admin/products/{product_id}/images/order")
async def reorder_images(request: web.Request) -> web.Response:
    """`{image_ids: [...]}`, every picture of the product once, first = main picture."""
    await require_user(request, Role.admin)
    product_id = int_param(request, "product_id")
    body = await parse_body(request, ImageOrderIn)
    async with request.app[DB].transaction() as session:
        images = await product_images.reorder_images(session, product_id, body.image_ids)
        result = _images(images)
    return json_response(result)


@routes.get("/media/products/{name}")
async def media_file(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if not _FILE.match(name):
        raise web.HTTPNotFound()
    key = product_images.file_name(*name.removesuffix(".webp").rsplit("-", 1))
    headers = {"Cache-Control": CACHE_FOREVER, "Content-Type": "image/webp"}
    store = request.app[IMAGE_STORE]
    if isinstance(store, DiskImageStore):  # sendfile, ranges and conditional requests by aiohttp
        path = store.path(key)
        if not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path, headers=headers)
    data = await asyncio.to_thread(store.get, key)
    if data is None:
        raise web.HTTPNotFound()
    # The name is the content: it is its own ETag.
    if request.headers.get("If-None-Match") == f'"{name}"':
        return web.Response(status=304, headers={"Cache-Control": CACHE_FOREVER, "ETag": f'"{name}"'})
    return web.Response(body=data, headers={**headers, "ETag": f'"{name}"'})


def image_store(settings: Settings) -> ImageStore:
    """The store the settings name; a bad choice stops the node at start-up."""
    if settings.media_store == "disk":
        return DiskImageStore(settings.media_dir)
    if settings.media_store == "s3":
        if not settings.s3_bucket:
            raise ValueError("LIVEMALL_MEDIA_STORE=s3 needs LIVEMALL_S3_BUCKET")
        return S3ImageStore.connect(
            bucket=settings.s3_bucket, endpoint_url=settings.s3_endpoint_url, region=settings.s3_region,
            access_key=settings.s3_access_key, secret_key=settings.s3_secret_key, prefix=settings.s3_prefix)
    raise ValueError(f"LIVEMALL_MEDIA_STORE is disk or s3, not {settings.media_store!r}")


def setup(app: web.Application) -> None:
    app[IMAGE_STORE] = image_store(app[SETTINGS])
    app[_DECODING] = asyncio.Semaphore(DECODERS)
    app.router.add_routes(routes)
