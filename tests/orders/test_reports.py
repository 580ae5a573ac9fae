"""Broker credit and show reports, checked against figures computed by hand."""

from __future__ import annotations

from sqlalchemy import update

from orders.models import Committee, Product, Show, ShowViewer
from orders.reports import VIEWERS_COUNTED_AS
from tests.orders.conftest import GREEN_TEA, MASK_LINE, MEMBER, SNAIL, YUJA_TEA


async def set_rate(shop, code: str, bp: int) -> None:
    async with shop.db.transaction() as session:
        await session.execute(update(Committee).where(Committee.code == code).values(commission_bp=bp))


async def paid(shop, who: str = "buyer", **body) -> dict:
    order = await shop.placed(who, **body)
    response = await shop.post(f"/api/orders/{order['id']}/confirm-payment", "admin")
    assert response.status == 200
    return await response.json()


async def brokers(shop) -> list[dict]:
    response = await shop.get("/api/reports/brokers", "admin")
    assert response.status == 200
    return await response.json()


async def test_paid_coview_order_credits_the_room_owner_at_the_committee_rate_per_currency(any_shop):
    shop = any_shop
    await shop.go_live(segment_id=1)
    await set_rate(shop, "food", 250)
    async with shop.db.transaction() as session:
        won = Product(supplier_id=1, committee_id=1, name="Hallabong 3kg", price=33333, currency="KRW", stock=10)
        session.add(won)
        await session.flush()
        won_id = won.id
    code = await shop.coview()
    pending = await shop.placed(product_id=GREEN_TEA, quantity=3, coview=code)
    assert await brokers(shop) == []  # not paid yet: nothing credited
    await shop.post(f"/api/orders/{pending['id']}/confirm-payment", "admin")
    await paid(shop, product_id=won_id, quantity=1, coview=code)
    await paid(shop, product_id=GREEN_TEA, quantity=1)  # not from a co-view room: no credit

    [report] = await brokers(shop)
    assert report["broker"]["id"] == MEMBER and report["orders"] == 2
    assert report["currencies"] == {
        "USD": {"orders": 1, "revenue": 3600, "commission": 90},  # 3 × 1200 × 2.5 %
        "KRW": {"orders": 1, "revenue": 33333, "commission": 833},  # 833.325 rounded down
    }


async def test_refund_reverses_the_credit(shop):
    code = await shop.coview()
    order = await paid(shop, coview=code)
    assert len(await brokers(shop)) == 1
    await shop.post(f"/api/orders/{order['id']}/refund", "admin")
    assert await brokers(shop) == []


async def test_accepted_quote_from_a_coview_room_credits_its_owner_at_once(shop):
    await shop.go_live(segment_id=3)
    code = await shop.coview()
    quote = await (await shop.post("/api/quotes", "buyer", {
        "product_id": MASK_LINE, "quantity": 2, "destination_country": "KZ", "incoterm": "DAP", "coview": code,
    })).json()
    await shop.post(f"/api/quotes/{quote['id']}/answer", "host", {"unit_price": 8_000_000})
    await shop.post(f"/api/quotes/{quote['id']}/accept", "buyer")
    [report] = await brokers(shop)
    # medical keeps the default 300 bp: 16,000,000 × 3 %
    assert report["currencies"] == {"USD": {"orders": 1, "revenue": 16_000_000, "commission": 480_000}}


async def test_show_report_matches_the_hand_computed_figures(any_shop):
    shop = any_shop
    await shop.go_live(segment_id=1)
    code = await shop.coview()
    await paid(shop, product_id=GREEN_TEA, quantity=3, show_id=1, coview=code)  # 3 × 1200 = 3600, food
    await paid(shop, "member", product_id=YUJA_TEA, quantity=2, show_id=1)  # 2 × 990 = 1980, food
    refunded = await paid(shop, "admin", product_id=GREEN_TEA, quantity=1, show_id=1)
    await shop.post(f"/api/orders/{refunded['id']}/refund", "admin")
    await shop.go_live(segment_id=2)
    await paid(shop, product_id=SNAIL, quantity=2, show_id=1)  # 2 × 2200 = 4400, cosmetics
    await shop.placed(product_id=YUJA_TEA, quantity=1, show_id=1)  # pending: no revenue
    await shop.placed(product_id=GREEN_TEA, quantity=9)  # another channel: not in the report
    for _ in range(2):
        await shop.post("/api/quotes", "buyer", {"product_id": MASK_LINE, "quantity": 1,
                                                 "destination_country": "AE", "incoterm": "FOB", "show_id": 1})
    async with shop.db.transaction() as session:
        await session.execute(update(Show).where(Show.id == 1).values(peak_viewers=5))
        # 8 viewers: the demo's four users (who watched, tests/orders/conftest.py) and four more.
        session.add_all(ShowViewer(show_id=1, viewer_key=f"v{i}") for i in range(4))

    response = await shop.get("/api/reports/shows/1", "host")
    assert response.status == 200
    report = await response.json()
    assert report["viewers"] == {"peak": 5, "total": 8, "signed_in": 4, "anonymous": 4,
                                 "counted_as": VIEWERS_COUNTED_AS}
    assert report["orders"] == {"total": 5, "by_status": {"paid": 3, "pending": 1, "refunded": 1}}
    assert report["paid_revenue"] == {"USD": 3600 + 1980 + 4400}
    assert report["buyers"] == 2 and report["conversion"] == 0.25  # buyer and member ÷ 8 viewers
    by_segment = {s["segment_id"]: s for s in report["segments"]}
    assert (by_segment[1]["orders"], by_segment[1]["paid_orders"], by_segment[1]["revenue"]) == (3, 2, {"USD": 5580})
    assert (by_segment[2]["orders"], by_segment[2]["paid_orders"], by_segment[2]["revenue"]) == (2, 1, {"USD": 4400})
    assert (by_segment[3]["orders"], by_segment[3]["revenue"]) == (0, {})
    assert report["committees"] == [
        {"committee": "cosmetics", "paid_orders": 1, "revenue": {"USD": 4400}},
        {"committee": "food", "paid_orders": 2, "revenue": {"USD": 5580}},
    ]
    assert [(p["product_id"], p["quantity"], p["revenue"]) for p in report["top_products"]] == [
        (GREEN_TEA, 3, {"USD": 3600}), (SNAIL, 2, {"USD": 4400}), (YUJA_TEA, 2, {"USD": 1980}),
    ]
    assert report["quotes_requested"] == 2


async def test_show_report_with_no_audience_has_zero_conversion(shop):
    report = await (await shop.get("/api/reports/shows/1", "admin")).json()
    assert report["conversion"] == 0.0 and report["orders"]["total"] == 0 and report["paid_revenue"] == {}


async def test_reports_are_for_hosts_and_admins(shop):
    assert (await shop.get("/api/reports/shows/1")).status == 401
    assert (await shop.get("/api/reports/shows/1", "buyer")).status == 403
    assert (await shop.get("/api/reports/brokers", "member")).status == 403
    assert (await shop.get("/api/reports/shows/99999", "admin")).status == 404


async def test_another_host_cannot_read_my_show_report(shop):
    from orders.accounts import create_user
    from orders.models import Role

    async with shop.db.transaction() as session:
        await create_user(session, email="host2@livemall.example", password="livemall-demo", name="Host 2",
                          role=Role.host, country="KR")
    assert (await shop.get("/api/reports/shows/1", "host2")).status == 403


# --- One definition of a sale, the funnel, the CSV exports (issue 15, item 7) -----------

async def funnel(shop) -> dict:
    response = await shop.get("/api/reports/funnel", "admin")
    assert response.status == 200, await response.text()
    return await response.json()


async def csv_rows(shop, path: str, who: str = "admin") -> tuple[bytes, list[list[str]]]:
    import csv
    import io

    response = await shop.get(path, who)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/csv")
    raw = await response.read()
    return raw, list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))


async def test_revenue_counts_paid_shipped_and_delivered_orders_and_subtracts_refunds(any_shop):
    shop = any_shop
    await shop.go_live(segment_id=1)  # food
    for status_path in (None, "ship", "deliver"):  # 1200 each: paid, shipped, delivered
        order = await paid(shop, product_id=GREEN_TEA, quantity=1, show_id=1)
        if status_path:
            await shop.ship_to(order["id"])
            assert (await shop.post(f"/api/orders/{order['id']}/ship", "admin")).status == 200
            if status_path == "deliver":
                assert (await shop.post(f"/api/orders/{order['id']}/deliver", "admin")).status == 200
    refunded = await paid(shop, product_id=YUJA_TEA, quantity=2, show_id=1)  # 1980, refunded
    assert (await shop.post(f"/api/orders/{refunded['id']}/refund", "admin")).status == 200
    await shop.placed(product_id=YUJA_TEA, quantity=5, show_id=1)  # pending: not a sale
    cancelled = await shop.placed(product_id=GREEN_TEA, quantity=4, show_id=1)
    assert (await shop.post(f"/api/orders/{cancelled['id']}/cancel", "buyer")).status == 200

    [food] = [row for row in (await funnel(shop))["sales"] if row["committee"] == "food"]

    assert (food["orders"], food["revenue"]) == (3, 3 * 1200)
    assert (food["gross"], food["refunded_orders"], food["refunds"]) == (3 * 1200 + 1980, 1, 1980)
    assert food["revenue"] == food["gross"] - food["refunds"]
    show = await (await shop.get("/api/reports/shows/1", "admin")).json()
    assert show["paid_revenue"] == {"USD": 3600} and show["refunds"] == {"USD": 1980}


async def test_the_funnel_counts_people_from_viewers_to_paying_buyers(any_shop):
    shop = any_shop
    await shop.go_live(segment_id=1)
    async with shop.db.transaction() as session:  # two anonymous viewers beside the four users
        session.add_all(ShowViewer(show_id=1, viewer_key=f"anon{i}") for i in range(2))
    code = await shop.coview()  # the member's room
    await paid(shop, product_id=GREEN_TEA, show_id=1, coview=code)  # buyer: paid
    await shop.placed(product_id=GREEN_TEA, show_id=1, coview=code)  # buyer again: one person
    await paid(shop, product_id=GREEN_TEA, show_id=1)  # …and a third order
    await shop.placed("admin", product_id=YUJA_TEA, show_id=1)  # admin: ordered, never paid
    await shop.go_live(segment_id=2)  # cosmetics
    await shop.placed("member", product_id=SNAIL, show_id=1)

    report = await funnel(shop)

    [show] = [row for row in report["shows"] if row["show_id"] == 1]
    assert (show["viewers"], show["buyers"], show["paid_buyers"]) == (6, 3, 1)
    assert show["conversion"] == round(1 / 6, 4)
    committees = {row["committee"]: row for row in report["committees"]}
    assert (committees["food"]["viewers"], committees["food"]["buyers"], committees["food"]["paid_buyers"]) == (6, 2, 1)
    assert (committees["cosmetics"]["buyers"], committees["cosmetics"]["paid_buyers"]) == (1, 0)
    segments = {row["segment_id"]: row for row in report["segments"]}
    assert (segments[1]["viewers"], segments[1]["buyers"], segments[1]["paid_buyers"]) == (6, 2, 1)
    assert (segments[2]["buyers"], segments[2]["paid_buyers"], segments[3]["buyers"]) == (1, 0, 0)
    [broker] = report["brokers"]
    assert broker["broker_id"] == MEMBER and (broker["buyers"], broker["paid_buyers"]) == (1, 1)
    assert broker["viewers"] is None  # who sat in a co-view room is not recorded


async def test_csv_export_has_a_bom_quotes_fields_and_neutralises_formulas(any_shop):
    shop = any_shop
    hostile = '=HYPERLINK("http://evil.example","click"), then'
    async with shop.db.transaction() as session:
        await session.execute(update(Show).where(Show.id == 1).values(title=hostile))
        await session.execute(update(Committee).where(Committee.code == "food").values(code="-food"))
    await shop.go_live(segment_id=1)
    await paid(shop, product_id=GREEN_TEA, quantity=3, show_id=1, coview=await shop.coview())

    raw, rows = await csv_rows(shop, "/api/reports/shows.csv")
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw
    assert rows[0] == ["show_id", "title", "status", "started_at", "viewers", "buyers", "paid_buyers", "conversion"]
    [show] = [row for row in rows[1:] if row[0] == "1"]
    assert show[1] == "'" + hostile  # quoted (it holds a comma and quotes) and kept as text
    assert show[4:7] == ["4", "1", "1"]

    _, sales = await csv_rows(shop, "/api/reports/sales.csv")
    assert sales[1][:4] == ["'-food", "USD", "1", "36.00"]  # amounts in units, not cents

    raw, brokers_csv = await csv_rows(shop, "/api/reports/brokers.csv")
    assert "Иван Петров".encode() in raw  # UTF-8 as is: Excel reads it with the BOM
    assert brokers_csv[1][1:6] == ["Иван Петров", "1", "1", "USD", "1"]


async def test_csv_exports_are_for_admins_only(shop):
    assert (await shop.get("/api/reports/shows.csv")).status == 401
    assert (await shop.get("/api/reports/shows.csv", "host")).status == 403
    assert (await shop.get("/api/reports/funnel", "host")).status == 403
    assert (await shop.get("/api/reports/nothing.csv", "admin")).status == 404
    _, rows = await csv_rows(shop, "/api/reports/shows/1/segments.csv")
    assert [row[1] for row in rows[1:]] and rows[0][0] == "segment_id"


def test_csv_cell_neutralises_each_formula_start_but_not_numbers():
    from orders.reports import csv_cell

    for start in "=+-@\t\r":
        assert csv_cell(start + "1+1") == "'" + start + "1+1"
    assert csv_cell(-5) == -5 and csv_cell("Kim -1") == "Kim -1" and csv_cell("김민지") == "김민지"
