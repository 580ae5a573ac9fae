"""Routes: reports (JSON for hosts and admins) and their CSV exports (admins).

The figures are orders/reports.py's, so the admin page, these routes and the files a
spreadsheet opens count a sale the same way (docs/orders.md, "Reports")."""

from __future__ import annotations

from aiohttp import web

from orders import brokers, reports
from orders.models import Role, User
from orders.shows import get_show, require_host
from web.appkeys import DB
from web.auth import require_user
from web.errors import json_response
from web.validation import int_param

routes = web.RouteTableDef()


@routes.get("/api/reports/shows/{show_id}")
async def show_report(request: web.Request) -> web.Response:
    user: User = await require_user(request, Role.host, Role.admin)
    show_id = int_param(request, "show_id")
    async with request.app[DB].session() as session:
        require_host(user, await get_show(session, show_id))
        body = await reports.show_report(session, show_id)
    return json_response(body)


@routes.get("/api/reports/brokers")
async def broker_report(request: web.Request) -> web.Response:
    await require_user(request, Role.host, Role.admin)
    async with request.app[DB].session() as session:
        body = await brokers.broker_report(session)
    return json_response(body)


@routes.get("/api/reports/funnel")
async def funnel(request: web.Request) -> web.Response:
    await require_user(request, Role.admin)
    async with request.app[DB].session() as session:
        body = {
            "shows": await reports.funnel_by_show(session),
            "segments": await reports.funnel_by_segment(session),
            "committees": await reports.funnel_by_committee(session),
            "brokers": await reports.funnel_by_broker(session),
            "sales": await reports.sales_by_committee(session),
        }
    return json_response(body)


def csv_response(name: str, data: bytes) -> web.Response:
    return web.Response(body=data, headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="livemall-{name}.csv"',
        "Cache-Control": "no-store",
    })


@routes.get("/api/reports/{table:[a-z]+}.csv")
async def report_csv(request: web.Request) -> web.Response:
    await require_user(request, Role.admin)
    table = request.match_info["table"]
    if table not in reports.TABLES:
        raise web.HTTPNotFound(text=f"no report {table!r}; one of {', '.join(reports.TABLES)}")
    async with request.app[DB].session() as session:
        header, rows = await reports.report_table(session, table)
    return csv_response(table, reports.to_csv(header, rows))


@routes.get("/api/reports/shows/{show_id}/segments.csv")
async def show_segments_csv(request: web.Request) -> web.Response:
    await require_user(request, Role.admin)
    show_id = int_param(request, "show_id")
    async with request.app[DB].session() as session:
        await get_show(session, show_id)
        rows = await reports.funnel_by_segment(session, show_id)
    header = ["segment_id", "segment", "committee", "viewers", "buyers", "paid_buyers", "conversion"]
    body = reports.to_csv(header, [[r["segment_id"], r["title"], r["committee"], r["viewers"], r["buyers"],
                                    r["paid_buyers"], r["conversion"]] for r in rows])
    return csv_response(f"show-{show_id}-segments", body)


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
