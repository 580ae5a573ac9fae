"""Routes: the address book, checkout of a pending order, shipping tables and a
product's shipping facts (admin), and the country list of the address form.

Thin handlers over orders/addresses.py, orders/checkout.py and orders/shipping.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from aiohttp import web
from pydantic import Field, StringConstraints

from orders import addresses, checkout, payments, shipping
from orders.catalog import product_public
from orders.errors import NotFound
from orders.events import send_committed
from orders.models import Role, utcnow
from orders.ordering import orders_public
from web.appkeys import DB, EVENTS
from web.auth import require_user
from web.errors import json_response
from web.validation import Body, Id, id_or_none, int_param, parse_body

routes = web.RouteTableDef()


Text2 = Annotated[str, StringConstraints(max_length=2)]
Text16 = Annotated[str, StringConstraints(max_length=16)]
Text31 = Annotated[str, StringConstraints(max_length=31)]
Text32 = Annotated[str, StringConstraints(max_length=32)]
Text48 = Annotated[str, StringConstraints(max_length=48)]
Text100 = Annotated[str, StringConstraints(max_length=100)]
Text200 = Annotated[str, StringConstraints(max_length=200)]


class AddressBody(Body):
    name: Text100
    line1: Text200
    line2: Text200 | None = None
    city: Text100
    region: Text100 | None = None
    postal_code: Text16 | None = None
    country: Text2
    phone: Text32

    def domain(self) -> addresses.AddressIn:
        return addresses.AddressIn(**self.model_dump())


class CheckoutBody(Body):
    address_id: Id


class BandBody(Body):
    up_to_grams: Annotated[int, Field(ge=1, le=shipping.MAX_GRAMS)]
    price: Annotated[int, Field(ge=0, le=shipping.MAX_PRICE)]


class ZoneBody(Body):
    name: Text100
    countries: Annotated[list[Text2], Field(min_length=1, max_length=250)]
    bands: Annotated[list[BandBody], Field(max_length=shipping.MAX_BANDS)] = []
    on_quote: bool = False
    duty_rate_bp: Annotated[int, Field(ge=0, le=shipping.MAX_DUTY_BP)] | None = None


class TableBody(Body):
    scope: Text48
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
    zones: Annotated[list[ZoneBody], Field(min_length=1, max_length=shipping.MAX_ZONES)]


Countries = Annotated[list[Text2], Field(max_length=250)]


class ProductShippingBody(Body):
    """Only what is sent changes; null clears (weight unknown, no class, no whitelist)."""

    weight_grams: Annotated[int, Field(ge=1, le=shipping.MAX_GRAMS)] | None = None
    shipping_class: Text31 | None = None
    ships_only_to: Countries | None = None
    never_ships_to: Countries | None = None


def _offer(request: web.Request) -> Callable[[str], list[str]]:
    """The payment providers offered for an order in a currency (orders/payments.py)."""
    from web.api_orders import PROVIDERS

    in_service = request.app.get(PROVIDERS, {})
    return lambda currency: payments.offered(in_service, currency)


# --- countries and the address book -----------------------------------------------------

@routes.get("/api/countries")
async def countries(request: web.Request) -> web.Response:
    return json_response(addresses.countries())


@routes.get("/api/addresses")
async def list_addresses(request: web.Request) -> web.Response:
    user = await require_user(request)
    async with request.app[DB].session() as session:
        rows = await addresses.list_addresses(session, user.id)
    return json_response([addresses.address_public(a) for a in rows])


@routes.post("/api/addresses")
async def add_address(request: web.Request) -> web.Response:
    user = await require_user(request)
    body = await parse_body(request, AddressBody)
    async with request.app[DB].transaction() as session:
        row = await addresses.add_address(session, user.id, body.domain(), utcnow())
        result = addresses.address_public(row)
    return json_response(result, status=201)


@routes.get("/api/addresses/{address_id}")
async def get_address(request: web.Request) -> web.Response:
    user = await require_user(request)
    address_id = int_param(request, "address_id")
    async with request.app[DB].session() as session:
        row = await addresses.get_address(session, user.id, address_id)
        result = addresses.address_public(row)
    return json_response(result)


@routes.put("/api/addresses/{address_id}")
async def replace_address(request: web.Request) -> web.Response:
    user = await require_user(request)
    address_id = int_param(request, "address_id")
    body = await parse_body(request, AddressBody)
    async with request.app[DB].transaction() as session:
        row = await addresses.replace_address(session, user.id, address_id, body.domain(), utcnow())
        result = addresses.address_public(row)
    return json_response(result)


@routes.delete("/api/addresses/{address_id}")
async def delete_address(request: web.Request) -> web.Response:
    user = await require_user(request)
    address_id = int_param(request, "address_id")
    async with request.app[DB].transaction() as session:
        await addresses.delete_address(session, user.id, address_id)
    return web.Response(status=204)


# --- checkout ---------------------------------------------------------------------------

@routes.get("/api/orders/{order_id}/checkout")
async def checkout_summary(request: web.Request) -> web.Response:
    user = await require_user(request)
    order_id = int_param(request, "order_id")
    async with request.app[DB].session() as session:
        result = await checkout.summary_for(session, order_id, user.id, _offer(request))
    return json_response(result)


@routes.post("/api/orders/{order_id}/checkout")
async def check_out(request: web.Request) -> web.Response:
    user = await require_user(request)
    order_id = int_param(request, "order_id")
    body = await parse_body(request, CheckoutBody)
    async with request.app[DB].transaction() as session:
        order = await checkout.check_out(session, order_id, user.id, body.address_id, utcnow())
        result = await checkout.summary(session, order, _offer(request))
        public = (await orders_public(session, [order]))[0]
    await send_committed(request.app[EVENTS], ("user", user.id, "order", public))
    return json_response(result)


# --- the admin's shipping tables and product shipping facts ---------------------------

@routes.get("/api/admin/shipping-tables")
async def list_tables(request: web.Request) -> web.Response:
    await require_user(request, Role.admin)
    async with request.app[DB].session() as session:
        rows = await shipping.list_tables(session)
    return json_response([shipping.table_public(t) for t in rows])


@routes.put("/api/admin/shipping-tables")
async def put_table(request: web.Request) -> web.Response:
    """Create or replace the table of a (scope, currency)."""
    await require_user(request, Role.admin)
    body = await parse_body(request, TableBody)
    zones = [zone.model_dump() for zone in body.zones]
    async with request.app[DB].transaction() as session:
        table, created = await shipping.put_table(session, body.scope, body.currency, zones, utcnow())
        result = shipping.table_public(table)
    return json_response(result, status=201 if created else 200)


@routes.delete("/api/admin/shipping-tables/{table_id}")
async def delete_table(request: web.Request) -> web.Response:
    await require_user(request, Role.admin)
    table_id = int_param(request, "table_id")
    async with request.app[DB].transaction() as session:
        await shipping.delete_table(session, table_id)
    return web.Response(status=204)


@routes.patch("/api/admin/products/{product_id}/shipping")
async def change_product_shipping(request: web.Request) -> web.Response:
    await require_user(request, Role.admin)
    product_id = int_param(request, "product_id")
    body = await parse_body(request, ProductShippingBody)
    sent = body.model_dump(exclude_unset=True)
    change = shipping.ProductShipping(
        clear=frozenset(name for name, value in sent.items() if value is None),
        **{name: value for name, value in sent.items() if value is not None},
    )
    async with request.app[DB].transaction() as session:
        product = await shipping.change_product_shipping(session, product_id, change)
        result = product_public(product)
        result.update(shipping.product_shipping_public(product))
    return json_response(result)


# --- the page -------------------------------------------------------------------------

async def checkout_page(request: web.Request) -> web.Response:
    """/orders/{id}/checkout: the hold's countdown, the address book, totals and Pay
    (web/templates/checkout.html, web/static/js/checkout.js over the routes above)."""
    from web.pages import not_found, page_user, render, to_login

    user = await page_user(request)
    if user is None:
        raise to_login(request)
    order_id = id_or_none(request.match_info["order_id"])
    if order_id is None:
        return not_found(request, user, "order")
    async with request.app[DB].session() as session:
        try:
            summary = await checkout.summary_for(session, order_id, user.id, _offer(request))
        except NotFound:
            return not_found(request, user, "order")
        book = [addresses.address_public(a) for a in await addresses.list_addresses(session, user.id)]
    data = {"order_id": order_id, "checkout": summary, "addresses": book}
    return render(request, "checkout.html", user=user, data=data, countries=addresses.countries(),
                  default_country=user.country)


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
    app.router.add_get("/orders/{order_id}/checkout", checkout_page)
