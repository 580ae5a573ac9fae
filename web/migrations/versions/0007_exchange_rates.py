"""exchange rates: what a unit of one currency is worth in another, kept by the admin

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 13:45:00

Issue 15, item 4: buyers see "≈ ₽1,930" beside "$22.00". Catalog prices stay in their
own currency; these rates only feed that approximate figure (orders/exchange_rates.py).
The rate is an integer scaled by 10^12, exact on SQLite too (which has no exact
decimal type); `as_of` is the day the admin's figure is from.
"""
from alembic import op
import sqlalchemy as sa
import orders.models


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'exchange_rates',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('base', sa.String(length=3), nullable=False),
        sa.Column('quote', sa.String(length=3), nullable=False),
        sa.Column('rate_scaled', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('as_of', sa.Date(), nullable=False),
        sa.Column('updated_at', orders.models.UTCDateTime(), nullable=False),
        sa.CheckConstraint('rate_scaled > 0', name=op.f('ck_exchange_rates_rate_positive')),
        sa.CheckConstraint('base <> quote', name=op.f('ck_exchange_rates_two_currencies')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_exchange_rates')),
        sa.UniqueConstraint('base', 'quote', name='uq_exchange_rates_pair'),
    )


def downgrade() -> None:
    op.drop_table('exchange_rates')
