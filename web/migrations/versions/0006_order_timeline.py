"""order timeline: when an order was shipped, delivered, refunded, cancelled or expired

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 13:40:00

Issue 15, item 5: the buyer's order page shows each step with its time. `created_at`
and `paid_at` existed; a later step (delivered) must not hide the time of an earlier
one (shipped), so each gets its own column, set by orders/lifecycle.py. Expiry and
cancellation end an order, so they share `cancelled_at` (the status says which).
All nullable: a plain ALTER TABLE ADD COLUMN on SQLite, and the order desk's inserts,
which do not name them, store NULL. Orders already past a step get their `updated_at`
for the step they are at now (the best time known); earlier steps stay unknown.
"""
from alembic import op
import sqlalchemy as sa
import orders.models


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

# column → the status whose orders already took that step at their last update
COLUMNS = (
    ("shipped_at", ("shipped",)),
    ("delivered_at", ("delivered",)),
    ("refunded_at", ("refunded",)),
    ("cancelled_at", ("cancelled", "expired")),
)


def upgrade() -> None:
    for name, _ in COLUMNS:
        op.add_column('orders', sa.Column(name, orders.models.UTCDateTime(), nullable=True))
    orders_table = sa.table('orders', sa.column('status', sa.String()), sa.column('updated_at'),
                            *(sa.column(name) for name, _ in COLUMNS))
    for name, statuses in COLUMNS:
        op.execute(orders_table.update().where(orders_table.c.status.in_(statuses))
                   .values({name: orders_table.c.updated_at}))


def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        for name, _ in reversed(COLUMNS):
            batch_op.drop_column(name)
