"""mail queue: e-mail notifications, show reminders, the account's mail language

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 13:50:00

Issue 15, item 6: an e-mail is a row of `mail_queue`, written in the transaction of the
event it tells of and sent later by web/notifier.py; `event_key` is unique so an event
makes at most one mail. `show_reminders` are the "Remind me" of scheduled shows;
`user_languages` the language an account reads its e-mails in, when known.
"""
from alembic import op
import sqlalchemy as sa
import orders.models


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'mail_queue',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('event_key', sa.String(length=160), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('language', sa.String(length=8), nullable=True),
        sa.Column('params', sa.JSON(), nullable=True),
        sa.Column('status', sa.Enum('queued', 'sent', 'dropped', 'failed', name='mailstatus', native_enum=False,
                                    length=16), nullable=False),
        sa.Column('due_at', orders.models.UTCDateTime(), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('claimed_by', sa.String(length=40), nullable=True),
        sa.Column('claimed_until', orders.models.UTCDateTime(), nullable=True),
        sa.Column('last_error', sa.String(length=200), nullable=True),
        sa.Column('created_at', orders.models.UTCDateTime(), nullable=False),
        sa.Column('sent_at', orders.models.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_mail_queue_user_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_mail_queue')),
        sa.UniqueConstraint('event_key', name=op.f('uq_mail_queue_event_key')),
    )
    op.create_index('ix_mail_queue_status_due', 'mail_queue', ['status', 'due_at'], unique=False)
    op.create_table(
        'show_reminders',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('show_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('created_at', orders.models.UTCDateTime(), nullable=False),
        sa.Column('notified_at', orders.models.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['show_id'], ['shows.id'], name=op.f('fk_show_reminders_show_id_shows')),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_show_reminders_user_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_show_reminders')),
        sa.UniqueConstraint('show_id', 'user_id', name='uq_show_reminders_show_user'),
    )
    op.create_index(op.f('ix_show_reminders_show_id'), 'show_reminders', ['show_id'], unique=False)
    op.create_index(op.f('ix_show_reminders_user_id'), 'show_reminders', ['user_id'], unique=False)
    op.create_table(
        'user_languages',
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('language', sa.String(length=8), nullable=False),
        sa.Column('updated_at', orders.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_user_languages_user_id_users')),
        sa.PrimaryKeyConstraint('user_id', name=op.f('pk_user_languages')),
    )


def downgrade() -> None:
    op.drop_table('user_languages')
    op.drop_index(op.f('ix_show_reminders_user_id'), table_name='show_reminders')
    op.drop_index(op.f('ix_show_reminders_show_id'), table_name='show_reminders')
    op.drop_table('show_reminders')
    op.drop_index('ix_mail_queue_status_due', table_name='mail_queue')
    op.drop_table('mail_queue')
