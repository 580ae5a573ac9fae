"""live selling: flash deals and live auctions, with their ledgers

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 14:00:00

Issue 17, items 1 and 2. New tables only: a deal's terms and its buys (each buy names
the order it made), an auction's lot and outcome and every bid on it, accepted or not.
The hot state is in Redis (or the process); these are the record.
"""
from alembic import op
import sqlalchemy as sa
import orders.models


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

MONEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _status(*values: str, name: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, length=16)


def upgrade() -> None:
    op.create_table(
        'flash_deals',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('show_id', sa.Integer(), nullable=False),
        sa.Column('product_id', sa.Integer(), nullable=False),
        sa.Column('host_id', sa.Integer(), nullable=False),
        sa.Column('price', MONEY, nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('units', sa.Integer(), nullable=False),
        sa.Column('per_buyer_limit', sa.Integer(), nullable=False),
        sa.Column('opens_at', orders.models.UTCDateTime(), nullable=False),
        sa.Column('ends_at', orders.models.UTCDateTime(), nullable=False),
        sa.Column('status', _status('open', 'ended', name='dealstatus'), nullable=False),
        sa.Column('end_reason', sa.String(length=16), nullable=True),
        sa.Column('ended_at', orders.models.UTCDateTime(), nullable=True),
        sa.Column('created_at', orders.models.UTCDateTime(), nullable=False),
        sa.CheckConstraint('units > 0', name=op.f('ck_flash_deals_units_positive')),
        sa.CheckConstraint('per_buyer_limit > 0', name=op.f('ck_flash_deals_limit_positive')),
        sa.CheckConstraint('price >= 0', name=op.f('ck_flash_deals_price_not_negative')),
        sa.ForeignKeyConstraint(['show_id'], ['shows.id'], name=op.f('fk_flash_deals_show_id_shows')),
        sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_flash_deals_product_id_products')),
        sa.ForeignKeyConstraint(['host_id'], ['users.id'], name=op.f('fk_flash_deals_host_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_flash_deals')),
    )
    op.create_index(op.f('ix_flash_deals_show_id'), 'flash_deals', ['show_id'], unique=False)
    op.create_table(
        'flash_deal_buys',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('deal_id', sa.Integer(), nullable=False),
        sa.Column('buyer_id', sa.Integer(), nullable=False),
        sa.Column('quantity', sa.Integer(), nullable=False),
        sa.Column('order_id', sa.Integer(), nullable=False),
        sa.Column('at', orders.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['deal_id'], ['flash_deals.id'], name=op.f('fk_flash_deal_buys_deal_id_flash_deals')),
        sa.ForeignKeyConstraint(['buyer_id'], ['users.id'], name=op.f('fk_flash_deal_buys_buyer_id_users')),
        sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_flash_deal_buys_order_id_orders')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_flash_deal_buys')),
        sa.UniqueConstraint('order_id', name=op.f('uq_flash_deal_buys_order_id')),
    )
    op.create_index(op.f('ix_flash_deal_buys_deal_id'), 'flash_deal_buys', ['deal_id'], unique=False)
    op.create_table(
        'auctions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('show_id', sa.Integer(), nullable=False),
        sa.Column('product_id', sa.Integer(), nullable=False),
        sa.Column('seller_id', sa.Integer(), nullable=False),
        sa.Column('start_price', MONEY, nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('steps', sa.JSON(), nullable=False),
        sa.Column('mode', _status('sudden_death', 'extend', name='auctionmode'), nullable=False),
        sa.Column('extend_seconds', sa.Integer(), nullable=False),
        sa.Column('opens_at', orders.models.UTCDateTime(), nullable=False),
        sa.Column('ends_at', orders.models.UTCDateTime(), nullable=False),
        sa.Column('status', _status('open', 'sold', 'unsold', name='auctionstatus'), nullable=False),
        sa.Column('winner_id', sa.Integer(), nullable=True),
        sa.Column('final_price', MONEY, nullable=True),
        sa.Column('order_id', sa.Integer(), nullable=True),
        sa.Column('closed_at', orders.models.UTCDateTime(), nullable=True),
        sa.Column('created_at', orders.models.UTCDateTime(), nullable=False),
        sa.CheckConstraint('start_price >= 0', name=op.f('ck_auctions_start_price_not_negative')),
        sa.ForeignKeyConstraint(['show_id'], ['shows.id'], name=op.f('fk_auctions_show_id_shows')),
        sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_auctions_product_id_products')),
        sa.ForeignKeyConstraint(['seller_id'], ['users.id'], name=op.f('fk_auctions_seller_id_users')),
        sa.ForeignKeyConstraint(['winner_id'], ['users.id'], name=op.f('fk_auctions_winner_id_users')),
        sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_auctions_order_id_orders')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_auctions')),
    )
    op.create_index(op.f('ix_auctions_show_id'), 'auctions', ['show_id'], unique=False)
    op.create_index(op.f('ix_auctions_status'), 'auctions', ['status'], unique=False)
    op.create_table(
        'auction_bids',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('auction_id', sa.Integer(), nullable=False),
        sa.Column('seq', sa.Integer(), nullable=True),
        sa.Column('bidder_id', sa.Integer(), nullable=False),
        sa.Column('at', orders.models.UTCDateTime(), nullable=False),
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('amount', MONEY, nullable=True),
        sa.Column('accepted', sa.Boolean(), nullable=False),
        sa.Column('reason', sa.String(length=32), nullable=True),
        sa.Column('price_after', MONEY, nullable=True),
        sa.Column('leader_after', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['auction_id'], ['auctions.id'], name=op.f('fk_auction_bids_auction_id_auctions')),
        sa.ForeignKeyConstraint(['bidder_id'], ['users.id'], name=op.f('fk_auction_bids_bidder_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_auction_bids')),
    )
    op.create_index(op.f('ix_auction_bids_auction_id'), 'auction_bids', ['auction_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_auction_bids_auction_id'), table_name='auction_bids')
    op.drop_table('auction_bids')
    op.drop_index(op.f('ix_auctions_status'), table_name='auctions')
    op.drop_index(op.f('ix_auctions_show_id'), table_name='auctions')
    op.drop_table('auctions')
    op.drop_index(op.f('ix_flash_deal_buys_deal_id'), table_name='flash_deal_buys')
    op.drop_table('flash_deal_buys')
    op.drop_index(op.f('ix_flash_deals_show_id'), table_name='flash_deals')
    op.drop_table('flash_deals')
