"""Routes: coupons (vouchers made by the admin or a host, a buyer's wallet, a coupon
applied at checkout) and member mileage (the balance and its history, points redeemed
at checkout, the admin's programme and rates).

Thin handlers over orders/coupons.py and orders/mileage.py; the checkout routes these
sit beside are in web/api_checkout.py, and answer the same checkout summary.
"""

from __future__ import annotations

from typing import Annotated, Literal

from aiohttp import web
from pydantic import Field, StringConstraints, model_validator

from orders import checkout, coupons, mileage
from orders.errors import Invalid
from orders.events import send_committed
from orders.models import Role, VoucherKind, utcnow
from orders.ordering import orders_public
from web.api_checkout import _offer
from web.appkeys import DB, EVENTS
from web.auth import require_user
from web.errors import json_response
from web.validation import Body, Id, Instant, id_or_none, int_param, parse_body

routes = web.RouteTableDef()

Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Amount = Annotated[int, Field(ge=0, le=coupons.MAX_AMOUNT)]


class VoucherBody(Body):
    kind: Literal["percent", "amount"]
    currency: Currency
    total_limit: Annotated[int, Field(ge=1, le=coupons.MAX_USES)]
    starts_at: Instant
    ends_at: Instant
    percent_bp: Annotated[int, Field(ge=1, le=10000)] | None = None
    amount: Amount | None = None
    min_spend: Amount = 0
    per_buyer_limit: Annotated[int, Field(ge=1, le=coupons.MAX_USES)] = 1
    code: Annotated[str, StringConstraints(max_length=32)] | None = None
    show_id: Id | None = None
    exhibition_id: Id | None = None
    committee: Annotated[str, StringConstraints(max_length=32)] | None = None

    def terms(self) -> coupons.VoucherTerms:
        return coupons.VoucherTerms(**{**self.model_dump(), "kind": VoucherKind(self.kind)})


class CouponBody(Body):
    """A typed code, or a claimed voucher's id: one of the two."""

    code: Annotated[str, StringConstraints(min_length=1, max_length=32)] | None = None
    voucher_id: Id | None = None

    @model_validator(mode="after")
    def one_of(self) -> "CouponBody":
        if (self.code is None) == (self.voucher_id is None):
            raise ValueError("send code or voucher_id")
        return self


class PointsBody(Body):
    points: Annotated[int, Field(ge=1, le=coupons.MAX_AMOUNT)]


class ProgramBody(Body):
    currency: Currency
    redeem_share_bp: Annotated[int, Field(ge=0, le=10000)]
    expiry_days: Annotated[int, Field(ge=1, le=3650)]


class RateBody(Body):
    committee: Annotated[str, StringConstraints(max_length=32)] | None = None
    exhibition_id: Id | None = None
    rate_bp: Annotated[int, Field(ge=0, le=10000)]
    broker_rate_bp: Annotated[int, Field(ge=0, le=10000)] = 0


# --- vouchers ---------------------------------------------------------------------------

@routes.post("/api/vouchers")
async def create_voucher(request: web.Request) -> web.Response:
    user = await require_user(request, Role.admin, Role.host)
    body = await parse_body(request, VoucherBody)
    async with request.app[DB].transaction() as session:
        voucher = await coupons.create_voucher(session, user, body.terms(), utcnow())
        result = await coupons.public(session, voucher)
    return json_response(result, status=201)


@routes.get("/api/vouchers")
async def list_vouchers(request: web.Request) -> web.Response:
    user = await require_user(request, Role.admin, Role.host)
    show_id = None
    if "show_id" in request.query:
        show_id = id_or_none(request.query["show_id"])
        if show_id is None:
            raise Invalid("show_id is a show's id", field="show_id")
    async with request.app[DB].session() as session:
        rows = await coupons.list_vouchers(session, user, show_id)
        result = [await coupons.public(session, v) for v in rows]
    return json_response(result)


@routes.get("/api/me/vouchers")
async def my_vouchers(request: web.Request) -> web.Response:
    user = await require_user(request)
    async with request.app[DB].session() as session:
        result = await coupons.wallet(session, user.id, utcnow())
    return json_response(result)


# --- at checkout ------------------------------------------------------------------------

async def _changed(request: web.Request, session, order, user_id: int) -> tuple[dict, dict]:
    summary = await checkout.summary(session, order, _offer(request))
    public = (await orders_public(session, [order]))[0]
    return summary, public


@routes.post("/api/orders/{order_id}/coupon")
async def apply_coupon(request: web.Request) -> web.Response:
    user = await require_user(request)
    order_id = int_param(request, "order_id")
    body = await parse_body(request, CouponBody)
    async with request.app[DB].transaction() as session:
        order = await coupons.apply_coupon(session, order_id, user.id, utcnow(), code=body.code,
                                           voucher_id=body.voucher_id)
        summary, public = await _changed(request, session, order, user.id)
    await send_committed(request.app[EVENTS], ("user", user.id, "order", public))
    return json_response(summary)


@routes.post("/api/orders/{order_id}/points")
async def redeem_points(request: web.Request) -> web.Response:
    user = await require_user(request)
    order_id = int_param(request, "order_id")
    body = await parse_body(request, PointsBody)
    async with request.app[DB].transaction() as session:
        order = await mileage.redeem(session, order_id, user.id, body.points, utcnow())
        summary, public = await _changed(request, session, order, user.id)
    await send_committed(request.app[EVENTS], ("user", user.id, "order", public))
    return json_response(summary)


# --- mileage ----------------------------------------------------------------------------

@routes.get("/api/me/mileage")
async def my_mileage(request: web.Request) -> web.Response:
    user = await require_user(request)
    async with request.app[DB].transaction() as session:  # points past their date expire as read
        result = await mileage.statement(session, user.id, utcnow())
    return json_response(result)


@routes.get("/api/admin/mileage")
async def get_program(request: web.Request) -> web.Response:
    await require_user(request, Role.admin)
    async with request.app[DB].session() as session:
        result = await mileage.program_public(session)
    return json_response(result)


@routes.put("/api/admin/mileage")
async def put_program(request: web.Request) -> web.Response:
    await require_user(request, Role.admin)
    body = await parse_body(request, ProgramBody)
    async with request.app[DB].transaction() as session:
        await mileage.set_program(session, body.currency, body.redeem_share_bp, body.expiry_days, utcnow())
        result = await mileage.program_public(session)
    return json_response(result)


@routes.put("/api/admin/mileage-rates")
async def put_rate(request: web.Request) -> web.Response:
    await require_user(request, Role.admin)
    body = await parse_body(request, RateBody)
    async with request.app[DB].transaction() as session:
        await mileage.set_rate(session, committee=body.committee, exhibition_id=body.exhibition_id,
                               rate_bp=body.rate_bp, broker_rate_bp=body.broker_rate_bp, at=utcnow())
        result = await mileage.program_public(session)
    return json_response(result)


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
