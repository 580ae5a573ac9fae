"""Tables of the realtime rooms: chat, questions, pins.

Co-view rooms and the audience ledger live in orders/models.py because orders and
reports read them (broker attribution, viewer counts) and orders must not import rooms.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, Text
from sqlalchemy.orm import Mapped, mapped_column

from orders.models import Base, UTCDateTime, utcnow


class ChatMessage(Base):
    __tablename__ = "chat_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    show_id: Mapped[int] = mapped_column(ForeignKey("shows.id"), index=True)
    coview_id: Mapped[int | None] = mapped_column(ForeignKey("coview_rooms.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    text: Mapped[str] = mapped_column(Text)  # raw: escaped when rendered, never before
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)


class Question(Base):
    __tablename__ = "questions"

    id: Mapped[int] = mapped_column(primary_key=True)
    show_id: Mapped[int] = mapped_column(ForeignKey("shows.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    coview_id: Mapped[int | None] = mapped_column(ForeignKey("coview_rooms.id"))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Pin(Base):
    """A product pinned on screen; the offset from the show's start drives the replay."""

    __tablename__ = "pins"

    id: Mapped[int] = mapped_column(primary_key=True)
    show_id: Mapped[int] = mapped_column(ForeignKey("shows.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    segment_id: Mapped[int | None] = mapped_column(ForeignKey("segments.id"))
    pinned_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    offset_ms: Mapped[int | None] = mapped_column(Integer)
    unpinned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
