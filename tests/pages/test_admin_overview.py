"""The admin page's lists and report queries, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import select

from orders.demo import load_demo
from orders.models import BrokerCredit, Order, OrderStatus, Product, Role, User
from web.pages import admin_overview


async def test_admin_overview_lists_everything_and_sums_sales(db):
    async with db.transaction() as session:
        await load_demo(session)
        buyer = await session.scalar(select(User).where(User.role == Role.buyer))
        member = await session.scalar(select(User).where(User.role == Role.member))
        tea = await session.scalar(select(Product).where(Product.name == "Jeju Organic Green Tea 100g"))
        now = datetime.now(timezone.utc)
        for quantity, status in ((2, OrderStatus.paid), (1, OrderStatus.cancelled), (3, OrderStatus.pending)):
            session.add(Order(buyer_id=buyer.id, product_id=tea.id, quantity=quantity, unit_price=1200,
                              currency="USD", total=1200 * quantity, status=status,
                              committee_id=tea.committee_id, broker_id=member.id, created_at=now))
        await session.flush()
        first, second = (await session.scalars(select(Order.id).order_by(Order.id).limit(2))).all()
        session.add(BrokerCredit(broker_id=member.id, order_id=first, committee_id=tea.committee_id, revenue=2400,
                                 amount=72, currency="USD", rate_bp=300))
        # A credit reversed by a refund earns nothing and is not counted.
        session.add(BrokerCredit(broker_id=member.id, order_id=second, committee_id=tea.committee_id, revenue=1200,
                                 amount=36, currency="USD", rate_bp=300, reversed_at=now))
    async with db.session() as session:
        overview = await admin_overview(session)
    assert len(overview["committees"]) == 14
    assert [p.name for p, _ in overview["packages"]] == ["Mask Line + Filter Machine Package"]
    assert len(overview["orders"]) == 3 and overview["quotes"] == []
    row = overview["by_committee"][0]
    # Only the paid order is a sale (orders/reports.py): neither the cancelled nor the pending one.
    assert (row["committee"].code, row["currency"], row["orders"], row["revenue"]) == ("food", "USD", 1, 2400)
    [broker] = overview["by_broker"]
    assert broker["broker"]["name"] == "Иван Петров"
    assert broker["currencies"] == {"USD": {"orders": 1, "revenue": 2400, "commission": 72}}
