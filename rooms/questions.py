"""Q&A: signed-in viewers ask, the host answers in order; a question asked from a
co-view room is marked `via_coview` so the host knows a broker is relaying it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from orders.errors import NotFound
from orders.models import User
from rooms.models import Question

LISTED = 200  # questions a joining host (or asker) receives


class Named(Protocol):
    """Who asked: a User, or the chat Author a socket already holds (no query needed)."""

    id: int
    name: str


def question_public(question: Question, user: Named) -> dict[str, Any]:
    return {
        "id": question.id,
        "text": question.text,
        "user": {"id": user.id, "name": user.name},
        "via_coview": question.coview_id is not None,
        "answered": question.answered_at is not None,
        "at": question.created_at.isoformat(),
    }


async def ask(
    session: AsyncSession, *, show_id: int, user: Named, coview_id: int | None, text: str, at: datetime
) -> dict[str, Any]:
    question = Question(show_id=show_id, user_id=user.id, coview_id=coview_id, text=text, created_at=at)
    session.add(question)
    await session.flush()
    return question_public(question, user)


async def answer(session: AsyncSession, *, show_id: int, question_id: int, at: datetime) -> tuple[dict[str, Any], int | None]:
    """Mark a question answered (again is harmless); returns it and its co-view room."""
    row = (
        await session.execute(
            select(Question, User).join(User, User.id == Question.user_id).where(Question.id == question_id)
        )
    ).first()
    if row is None or row[0].show_id != show_id:
        raise NotFound(f"no question {question_id} in this show")
    question, user = row
    if question.answered_at is None:
        question.answered_at = at
        await session.flush()
    return question_public(question, user), question.coview_id


async def listed(session: AsyncSession, *, show_id: int, user_id: int | None = None) -> list[dict[str, Any]]:
    """A show's questions in the order they were asked: all of them for the host,
    one asker's own otherwise (`user_id`)."""
    stmt = (
        select(Question, User)
        .join(User, User.id == Question.user_id)
        .where(Question.show_id == show_id)
        .order_by(Question.id.desc())
        .limit(LISTED)
    )
    if user_id is not None:
        stmt = stmt.where(Question.user_id == user_id)
    rows = (await session.execute(stmt)).all()
    return [question_public(q, u) for q, u in reversed(rows)]
