"""Routes: committees and products."""

from __future__ import annotations

from aiohttp import web

from orders import catalog
from orders.addresses import check_country
from orders.shipping import refusal as shipping_refusal
from orders.models import ProductKind
from web.appkeys import DB, SETTINGS
from web.errors import json_response, BadRequest
from web.validation import int_param

routes = web.RouteTableDef()


@routes.get("/api/committees")
async def committees(request: web.Request) -> web.Response:
    async with request.app[DB].session() as session:
        rows = await catalog.list_committees(session)
    return json_response([catalog.committee_public(c) for c in rows])


@routes.get("/api/products")
async def products(request: web.Request) -> web.Response:
    committee = request.query.get("committee") or None
    q = request.query.get("q") or None
    if (committee and len(committee) > 32) or (q and len(q) > 100):
        raise BadRequest("committee is at most 32 characters and q at most 100")
    if any("\x00" in text for text in (committee or "", q or "")):
        raise BadRequest("committee and q must not contain NUL characters")  # PostgreSQL cannot store them
    async with request.app[DB].session() as session:
        rows = await catalog.list_products(session, committee=committee, q=q)
    ships_to = request.query.get("ships_to")
    if ships_to:  # only what can reach the buyer's country (issue 15: hide, as shops do)
        country = check_country(ships_to[:8], "ships_to")
        rows = [p for p in rows if shipping_refusal(p, country) is None]
    limit = request.app[SETTINGS].order_max_quantity
    return json_response([{**catalog.product_public(p), "max_per_order": limit} for p in rows])


@routes.get("/api/products/{product_id}")
async def product(request: web.Request) -> web.Response:
    product_id = int_param(request, "product_id")
    async with request.app[DB].session() as session:
        found = await catalog.get_product(session, product_id)
        body = catalog.product_public(found)
        body["max_per_order"] = request.app[SETTINGS].order_max_quantity  # the per-order limit (moq is the least)
        if found.kind is ProductKind.industrial:
            items = await catalog.package_items(session, found.id)
            body["package_items"] = [{"product_id": p.id, "name": p.name, "quantity": q} for p, q in items]
    return json_response(body)
