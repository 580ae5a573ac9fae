"""coupons and member mileage: vouchers, their pins, claims and uses, an order's
discount lines; the mileage programme, its rates, accounts and ledger

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 15:00:00

Issue 17, items 3 and 5. New tables only (the orders table is untouched: a discount is a
line of its own in order_discounts). The mileage programme starts with one row: USD,
30 % of an order's goods redeemable, points expiring after 365 days.
"""
from alembic import op
import sqlalchemy as sa
import orders.models


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

MONEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC = orders.models.UTCDateTime


def upgrade() -> None:
    op.create_table(
        'vouchers',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('code', sa.String(length=32), nullable=False),
        sa.Column('kind', sa.Enum('percent', 'amount', name='voucherkind', native_enum=False, length=16),
                  nullable=False),
        sa.Column('percent_bp', sa.Integer(), nullable=True),
        sa.Column('amount', MONEY, nullable=True),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('min_spend', MONEY, nullable=False),
        sa.Column('per_buyer_limit', sa.Integer(), nullable=False),
        sa.Column('total_limit', sa.Integer(), nullable=False),
        sa.Column('uses', sa.Integer(), nullable=False),
        sa.Column('show_id', sa.Integer(), nullable=True),
        sa.Column('exhibition_id', sa.Integer(), nullable=True),
        sa.Column('committee_id', sa.Integer(), nullable=True),
        sa.Column('starts_at', UTC(), nullable=False),
        sa.Column('ends_at', UTC(), nullable=False),
        sa.Column('created_by', sa.Integer(), nullable=False),
        sa.Column('created_at', UTC(), nullable=False),
        sa.CheckConstraint('uses >= 0 AND uses <= total_limit', name=op.f('ck_vouchers_uses_within_limit')),
        sa.CheckConstraint('total_limit >= 1 AND per_buyer_limit >= 1', name=op.f('ck_vouchers_limits_positive')),
        sa.CheckConstraint('min_spend >= 0', name=op.f('ck_vouchers_min_spend_not_negative')),
        sa.ForeignKeyConstraint(['show_id'], ['shows.id'], name=op.f('fk_vouchers_show_id_shows')),
        sa.ForeignKeyConstraint(['exhibition_id'], ['exhibitions.id'],
                                name=op.f('fk_vouchers_exhibition_id_exhibitions')),
        sa.ForeignKeyConstraint(['committee_id'], ['committees.id'], name=op.f('fk_vouchers_committee_id_committees')),
        sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_vouchers_created_by_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_vouchers')),
        sa.UniqueConstraint('code', name=op.f('uq_vouchers_code')),
    )
    op.create_index(op.f('ix_vouchers_show_id'), 'vouchers', ['show_id'], unique=False)
    op.create_table(
        'voucher_pins',
        sa.Column('show_id', sa.Integer(), nullable=False),
        sa.Column('voucher_id', sa.Integer(), nullable=False),
        sa.Column('pinned_at', UTC(), nullable=False),
        sa.ForeignKeyConstraint(['show_id'], ['shows.id'], name=op.f('fk_voucher_pins_show_id_shows')),
        sa.ForeignKeyConstraint(['voucher_id'], ['vouchers.id'], name=op.f('fk_voucher_pins_voucher_id_vouchers')),
        sa.PrimaryKeyConstraint('show_id', name=op.f('pk_voucher_pins')),
    )
    op.create_table(
        'voucher_claims',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('voucher_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('show_id', sa.Integer(), nullable=True),
        sa.Column('claimed_at', UTC(), nullable=False),
        sa.ForeignKeyConstraint(['voucher_id'], ['vouchers.id'], name=op.f('fk_voucher_claims_voucher_id_vouchers')),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_voucher_claims_user_id_users')),
        sa.ForeignKeyConstraint(['show_id'], ['shows.id'], name=op.f('fk_voucher_claims_show_id_shows')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_voucher_claims')),
        sa.UniqueConstraint('voucher_id', 'user_id', name='uq_voucher_claims_voucher_user'),
    )
    op.create_index(op.f('ix_voucher_claims_user_id'), 'voucher_claims', ['user_id'], unique=False)
    op.create_table(
        'voucher_uses',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('voucher_id', sa.Integer(), nullable=False),
        sa.Column('buyer_id', sa.Integer(), nullable=False),
        sa.Column('order_id', sa.Integer(), nullable=False),
        sa.Column('amount', MONEY, nullable=False),
        sa.Column('created_at', UTC(), nullable=False),
        sa.Column('released_at', UTC(), nullable=True),
        sa.ForeignKeyConstraint(['voucher_id'], ['vouchers.id'], name=op.f('fk_voucher_uses_voucher_id_vouchers')),
        sa.ForeignKeyConstraint(['buyer_id'], ['users.id'], name=op.f('fk_voucher_uses_buyer_id_users')),
        sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_voucher_uses_order_id_orders')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_voucher_uses')),
        sa.UniqueConstraint('order_id', name=op.f('uq_voucher_uses_order_id')),
    )
    op.create_index('ix_voucher_uses_voucher_buyer', 'voucher_uses', ['voucher_id', 'buyer_id'], unique=False)
    op.create_table(
        'order_discounts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('order_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('amount', MONEY, nullable=False),
        sa.Column('voucher_id', sa.Integer(), nullable=True),
        sa.Column('created_at', UTC(), nullable=False),
        sa.CheckConstraint('amount >= 0', name=op.f('ck_order_discounts_amount_not_negative')),
        sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_order_discounts_order_id_orders')),
        sa.ForeignKeyConstraint(['voucher_id'], ['vouchers.id'], name=op.f('fk_order_discounts_voucher_id_vouchers')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_order_discounts')),
        sa.UniqueConstraint('order_id', 'kind', name='uq_order_discounts_order_kind'),
    )
    op.create_index(op.f('ix_order_discounts_order_id'), 'order_discounts', ['order_id'], unique=False)
    program = op.create_table(
        'mileage_program',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('redeem_share_bp', sa.Integer(), nullable=False),
        sa.Column('expiry_days', sa.Integer(), nullable=False),
        sa.Column('updated_at', UTC(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_mileage_program')),
    )
    op.create_table(
        'mileage_rates',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('committee_id', sa.Integer(), nullable=True),
        sa.Column('exhibition_id', sa.Integer(), nullable=True),
        sa.Column('rate_bp', sa.Integer(), nullable=False),
        sa.Column('broker_rate_bp', sa.Integer(), nullable=False),
        sa.Column('updated_at', UTC(), nullable=False),
        sa.CheckConstraint('(committee_id IS NULL) <> (exhibition_id IS NULL)', name=op.f('ck_mileage_rates_one_scope')),
        sa.CheckConstraint('rate_bp >= 0 AND broker_rate_bp >= 0', name=op.f('ck_mileage_rates_rates_not_negative')),
        sa.ForeignKeyConstraint(['committee_id'], ['committees.id'],
                                name=op.f('fk_mileage_rates_committee_id_committees')),
        sa.ForeignKeyConstraint(['exhibition_id'], ['exhibitions.id'],
                                name=op.f('fk_mileage_rates_exhibition_id_exhibitions')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_mileage_rates')),
        sa.UniqueConstraint('committee_id', name=op.f('uq_mileage_rates_committee_id')),
        sa.UniqueConstraint('exhibition_id', name=op.f('uq_mileage_rates_exhibition_id')),
    )
    op.create_table(
        'mileage_accounts',
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('balance', MONEY, nullable=False),
        sa.Column('updated_at', UTC(), nullable=False),
        sa.CheckConstraint('balance >= 0', name=op.f('ck_mileage_accounts_balance_not_negative')),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_mileage_accounts_user_id_users')),
        sa.PrimaryKeyConstraint('user_id', name=op.f('pk_mileage_accounts')),
    )
    op.create_table(
        'mileage_entries',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('points', MONEY, nullable=False),
        sa.Column('balance_after', MONEY, nullable=False),
        sa.Column('order_id', sa.Integer(), nullable=True),
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('remaining', MONEY, nullable=True),
        sa.Column('expires_at', UTC(), nullable=True),
        sa.Column('created_at', UTC(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_mileage_entries_user_id_users')),
        sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_mileage_entries_order_id_orders')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_mileage_entries')),
        sa.UniqueConstraint('key', name=op.f('uq_mileage_entries_key')),
    )
    op.create_index('ix_mileage_entries_user_id_id', 'mileage_entries', ['user_id', 'id'], unique=False)
    op.create_index(op.f('ix_mileage_entries_order_id'), 'mileage_entries', ['order_id'], unique=False)
    from datetime import datetime, timezone

    op.bulk_insert(program, [{"id": 1, "currency": "USD", "redeem_share_bp": 3000, "expiry_days": 365,
                              "updated_at": datetime(2026, 12, 3, tzinfo=timezone.utc)}])


def downgrade() -> None:
    op.drop_index(op.f('ix_mileage_entries_order_id'), table_name='mileage_entries')
    op.drop_index('ix_mileage_entries_user_id_id', table_name='mileage_entries')
    op.drop_table('mileage_entries')
    op.drop_table('mileage_accounts')
    op.drop_table('mileage_rates')
    op.drop_table('mileage_program')
    op.drop_index(op.f('ix_order_discounts_order_id'), table_name='order_discounts')
    op.drop_table('order_discounts')
    op.drop_index('ix_voucher_uses_voucher_buyer', table_name='voucher_uses')
    op.drop_table('voucher_uses')
    op.drop_index(op.f('ix_voucher_claims_user_id'), table_name='voucher_claims')
    op.drop_table('voucher_claims')
    op.drop_table('voucher_pins')
    op.drop_index(op.f('ix_vouchers_show_id'), table_name='vouchers')
    op.drop_table('vouchers')
