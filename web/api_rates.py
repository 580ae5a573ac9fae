"""Routes: exchange rates — the admin keeps them, every page reads them.

Thin handlers over orders/exchange_rates.py. The public list is the same for everyone
and changes rarely, so it is cacheable; the pages convert with its `conversions`
(integer fractions, rounded in the browser exactly as the domain rounds).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from aiohttp import web
from pydantic import BeforeValidator, Field, StringConstraints

from orders import exchange_rates
from orders.admin_catalog import check_currency
from orders.models import Role, utcnow
from web.appkeys import DB
from web.auth import require_user
from web.errors import json_response
from web.validation import Body, parse_body

routes = web.RouteTableDef()

PUBLIC_MAX_AGE = 60  # seconds a browser or proxy may keep the public list

Code = Annotated[str, StringConstraints(min_length=3, max_length=3)]


def _number_as_text(value: object) -> object:
    # A JSON number is read by its shortest repr (87.25 → "87.25"); true/false stay refused.
    return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


# "87.25" (exact), or a JSON number
RateText = Annotated[str, BeforeValidator(_number_as_text), StringConstraints(min_length=1, max_length=40)]


class RateBody(Body):
    base: Code
    quote: Code
    rate: RateText
    as_of: Annotated[date, Field(strict=False)]  # "2026-12-01"


def _listing(table_rows) -> dict[str, object]:
    rows = [exchange_rates.rate_public(row) for row in table_rows]
    return {"rates": rows, "max_rates": exchange_rates.MAX_RATES}


@routes.get("/api/exchange-rates")
async def public_rates(request: web.Request) -> web.Response:
    """The kept rates; with `?to=RUB`, also what each currency converts to RUB with."""
    target = request.query.get("to")
    if target is not None:
        check_currency(target[:8], "to")
    async with request.app[DB].session() as session:
        rows = await exchange_rates.list_rates(session)
    body = _listing(rows)
    if target is not None:
        table = exchange_rates.RateTable(rows)
        body.update(to=target, exponent=exchange_rates.exponent(target), conversions=table.conversions_to(target),
                    currencies=sorted({*table.currencies(), target}))
    response = json_response(body)
    response.headers["Cache-Control"] = f"public, max-age={PUBLIC_MAX_AGE}"
    return response


@routes.get("/api/admin/exchange-rates")
async def admin_rates(request: web.Request) -> web.Response:
    await require_user(request, Role.admin)
    async with request.app[DB].session() as session:
        rows = await exchange_rates.list_rates(session)
    return json_response(_listing(rows))


@routes.put("/api/admin/exchange-rates")
async def put_rate(request: web.Request) -> web.Response:
    """Create or replace a pair's rate (either direction; see orders/exchange_rates.py)."""
    await require_user(request, Role.admin)
    body = await parse_body(request, RateBody)
    async with request.app[DB].transaction() as session:
        row, created = await exchange_rates.set_rate(
            session, body.base, body.quote, body.rate, body.as_of, utcnow())
        result = exchange_rates.rate_public(row)
    return json_response(result, status=201 if created else 200)


@routes.delete("/api/admin/exchange-rates/{base}/{quote}")
async def delete_rate(request: web.Request) -> web.Response:
    await require_user(request, Role.admin)
    base, quote = request.match_info["base"][:8], request.match_info["quote"][:8]
    check_currency(base, "base")
    check_currency(quote, "quote")
    async with request.app[DB].transaction() as session:
        await exchange_rates.delete_rate(session, base, quote)
    return web.Response(status=204)


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
