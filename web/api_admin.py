"""Routes: what only an admin changes from the admin page — users' roles, suppliers,
products (price, stock, details), packages and special exhibitions.

(Shows and segments are scheduled through `POST /api/shows` and
`POST /api/shows/{id}/segments`; orders move through `/api/orders/{id}/…`.)
"""

from __future__ import annotations

from typing import Annotated, Literal

from aiohttp import web
from pydantic import Field, StringConstraints

from orders import accounts, admin_catalog, catalog
from orders.errors import Invalid, NotFound
from orders.events import send_committed
from orders.models import ProductKind, Role
from rooms.server import ROOMS
from web.appkeys import DB, EVENTS
from web.auth import require_user
from web.errors import json_response
from web.validation import Body, Id, Instant, int_param, parse_body

routes = web.RouteTableDef()

Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Money = Annotated[int, Field(ge=0, le=admin_catalog.MAX_INT)]  # minor units of the currency
Count = Annotated[int, Field(ge=0, le=admin_catalog.MAX_INT)]
Positive = Annotated[int, Field(ge=1, le=admin_catalog.MAX_INT)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
ImageUrl = Annotated[str, StringConstraints(min_length=1, max_length=500)]
Description = Annotated[str, StringConstraints(max_length=5000)]


class RoleIn(Body):
    role: Literal["admin", "host", "member", "buyer"]


@routes.patch("/api/admin/users/{user_id}")
async def change_role(request: web.Request) -> web.Response:
    """Make a user a host, member, buyer or admin. An admin cannot change their own role:
    the last admin demoting themselves would leave nobody to undo it."""
    admin = await require_user(request, Role.admin)
    user_id = int_param(request, "user_id")
    body = await parse_body(request, RoleIn)
    if user_id == admin.id:
        raise Invalid("you cannot change your own role", field="role")
    async with request.app[DB].transaction() as session:
        user = await accounts.get_user(session, user_id)
        if user is None:
            raise NotFound(f"no user {user_id}")
        user.role = Role(body.role)
        result = accounts.user_private(user)
    rooms = request.app.get(ROOMS)
    if rooms is not None:
        rooms.role_changed(user_id, Role(body.role))  # open sockets too, on every node
    return json_response(result)


# --- the catalog -------------------------------------------------------------------------

class SupplierIn(Body):
    name: Name
    region: Annotated[str, StringConstraints(min_length=1, max_length=100)]


class ProductIn(Body):
    supplier_id: Id
    committee: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    name: Name
    description: Description = ""
    price: Money
    currency: Currency
    stock: Count = 0
    kind: Literal["retail", "industrial"] = "retail"
    moq: Positive = 1
    image_url: ImageUrl | None = None


class ProductChangeIn(Body):
    """Only what is sent changes. `restock` adds units (negative writes them off);
    there is no absolute stock on purpose: see admin_catalog.change_product."""

    price: Money | None = None
    restock: Annotated[int, Field(ge=-admin_catalog.MAX_INT, le=admin_catalog.MAX_INT)] = 0
    name: Name | None = None
    description: Description | None = None
    moq: Positive | None = None
    image_url: ImageUrl | None = None


class PackageLineIn(Body):
    product_id: Id
    quantity: Positive


class PackageIn(Body):
    package_id: Id
    items: Annotated[list[PackageLineIn], Field(min_length=1, max_length=admin_catalog.MAX_PACKAGE_ITEMS)]


class ExhibitionLineIn(Body):
    product_id: Id
    price: Money
    currency: Currency


class ExhibitionIn(Body):
    title: Name
    partner: Name
    starts_at: Instant
    ends_at: Instant
    products: Annotated[list[ExhibitionLineIn], Field(max_length=admin_catalog.MAX_EXHIBITION_PRODUCTS)] = []


@routes.post("/api/admin/suppliers")
async def add_supplier(request: web.Request) -> web.Response:
    await require_user(request, Role.admin)
    body = await parse_body(request, SupplierIn)
    async with request.app[DB].transaction() as session:
        supplier = await admin_catalog.add_supplier(session, name=body.name, region=body.region)
        result = admin_catalog.supplier_public(supplier)
    return json_response(result, status=201)


@routes.post("/api/admin/products")
async def add_product(request: web.Request) -> web.Response:
    await require_user(request, Role.admin)
    body = await parse_body(request, ProductIn)
    async with request.app[DB].transaction() as session:
        product = await admin_catalog.add_product(
            session, supplier_id=body.supplier_id, committee=body.committee, name=body.name,
            description=body.description, price=body.price, currency=body.currency, stock=body.stock,
            kind=ProductKind(body.kind), moq=body.moq, image_url=body.image_url,
        )
        result = catalog.product_public(product)
    return json_response(result, status=201)


@routes.patch("/api/admin/products/{product_id}")
async def change_product(request: web.Request) -> web.Response:
    await require_user(request, Role.admin)
    product_id = int_param(request, "product_id")
    body = await parse_body(request, ProductChangeIn)
    changes = body.model_dump(exclude_unset=True)
    if "image_url" in changes:  # null clears the image; absent leaves it
        changes["image_url"] = body.image_url
    async with request.app[DB].transaction() as session:
        product = await admin_catalog.change_product(session, product_id, **changes)
        result = catalog.product_public(product)
        shows = await admin_catalog.live_shows_offering(session, product_id) if body.restock else []
    # Viewers of live shows offering the product see the new stock (as after a sale).
    await send_committed(request.app[EVENTS], *(
        ("show", show_id, "stock", {"product_id": product_id, "stock": result["stock"]}) for show_id in shows))
    return json_response(result)


@routes.post("/api/admin/packages")
async def define_package(request: web.Request) -> web.Response:
    await require_user(request, Role.admin)
    body = await parse_body(request, PackageIn)
    lines = [admin_catalog.PackageLine(i.product_id, i.quantity) for i in body.items]
    async with request.app[DB].transaction() as session:
        package = await admin_catalog.define_package(session, body.package_id, lines)
        result = catalog.product_public(package)
        result["package_items"] = [
            {"product_id": p.id, "name": p.name, "quantity": q} for p, q in await catalog.package_items(session, package.id)
        ]
    return json_response(result, status=201)


@routes.post("/api/admin/exhibitions")
async def add_exhibition(request: web.Request) -> web.Response:
    await require_user(request, Role.admin)
    body = await parse_body(request, ExhibitionIn)
    lines = [admin_catalog.ExhibitionLine(i.product_id, i.price, i.currency) for i in body.products]
    async with request.app[DB].transaction() as session:
        exhibition = await admin_catalog.add_exhibition(
            session, title=body.title, partner=body.partner, starts_at=body.starts_at, ends_at=body.ends_at,
            lines=lines,
        )
        result = await admin_catalog.exhibition_public(session, exhibition)
    return json_response(result, status=201)
