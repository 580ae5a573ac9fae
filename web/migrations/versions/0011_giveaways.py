"""giveaways: a product given away in a show, its entries and its auditable draw; a deal
buy's given-back mark

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 15:10:00

Issue 17, item 4: two new tables (the giveaway with its committed seed, revealed at the
draw, and the entry list's hash; one entry per user). Also a nullable column on
`flash_deal_buys`: `returned_at`, set once when the buy's order was cancelled or
expired and its units and the buyer's count went back to the running deal.
"""
from alembic import op
import sqlalchemy as sa
import orders.models


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'giveaways',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('show_id', sa.Integer(), nullable=False),
        sa.Column('product_id', sa.Integer(), nullable=False),
        sa.Column('host_id', sa.Integer(), nullable=False),
        sa.Column('only', sa.String(length=16), nullable=False),
        sa.Column('coview_id', sa.Integer(), nullable=True),
        sa.Column('seed', sa.String(length=64), nullable=False),
        sa.Column('seed_hash', sa.String(length=64), nullable=False),
        sa.Column('opens_at', orders.models.UTCDateTime(), nullable=False),
        sa.Column('closes_at', orders.models.UTCDateTime(), nullable=False),
        sa.Column('status', sa.Enum('open', 'drawn', 'no_entries', 'unfulfilled', name='giveawaystatus',
                                    native_enum=False, length=16), nullable=False),
        sa.Column('entries', sa.Integer(), nullable=False),
        sa.Column('entries_hash', sa.String(length=64), nullable=True),
        sa.Column('winner_index', sa.Integer(), nullable=True),
        sa.Column('winner_id', sa.Integer(), nullable=True),
        sa.Column('order_id', sa.Integer(), nullable=True),
        sa.Column('drawn_at', orders.models.UTCDateTime(), nullable=True),
        sa.Column('created_at', orders.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['show_id'], ['shows.id'], name=op.f('fk_giveaways_show_id_shows')),
        sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_giveaways_product_id_products')),
        sa.ForeignKeyConstraint(['host_id'], ['users.id'], name=op.f('fk_giveaways_host_id_users')),
        sa.ForeignKeyConstraint(['coview_id'], ['coview_rooms.id'], name=op.f('fk_giveaways_coview_id_coview_rooms')),
        sa.ForeignKeyConstraint(['winner_id'], ['users.id'], name=op.f('fk_giveaways_winner_id_users')),
        sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_giveaways_order_id_orders')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_giveaways')),
        sa.UniqueConstraint('order_id', name=op.f('uq_giveaways_order_id')),
    )
    op.create_index(op.f('ix_giveaways_show_id'), 'giveaways', ['show_id'], unique=False)
    op.create_index(op.f('ix_giveaways_status'), 'giveaways', ['status'], unique=False)
    op.create_table(
        'giveaway_entries',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('giveaway_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('at', orders.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['giveaway_id'], ['giveaways.id'],
                                name=op.f('fk_giveaway_entries_giveaway_id_giveaways')),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_giveaway_entries_user_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_giveaway_entries')),
        sa.UniqueConstraint('giveaway_id', 'user_id', name='uq_giveaway_entries_giveaway_user'),
    )
    with op.batch_alter_table('flash_deal_buys') as batch:
        batch.add_column(sa.Column('returned_at', orders.models.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('flash_deal_buys') as batch:
        batch.drop_column('returned_at')
    op.drop_table('giveaway_entries')
    op.drop_index(op.f('ix_giveaways_status'), table_name='giveaways')
    op.drop_index(op.f('ix_giveaways_show_id'), table_name='giveaways')
    op.drop_table('giveaways')
