"""Sign-in sessions: one row per sign-in, so a token can be taken back.

A token names its session (web/auth.py); the session is live until it expires or is
revoked — by logout (that one session) or "sign out everywhere" (all of an account's).
The table is shared by every node, so a revocation holds on all of them; nodes cache a
live answer for about a second (web/auth.py), never a revoked one. Issue 14, item 14:
a token used to work for its whole 7 days after logout.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from orders.models import AuthSession, User

ID_BYTES = 18  # 24 URL-safe characters; the column holds 32


async def open_session(session: AsyncSession, user_id: int, at: datetime, ttl: timedelta) -> AuthSession:
    row = AuthSession(id=secrets.token_urlsafe(ID_BYTES), user_id=user_id, created_at=at, expires_at=at + ttl)
    session.add(row)
    await session.flush()
    return row


async def is_live(session: AsyncSession, session_id: str, user_id: int, at: datetime) -> bool:
    """Whether the session exists for this user, is not revoked and has not expired."""
    found = await session.scalar(
        select(AuthSession.id).where(
            AuthSession.id == session_id,
            AuthSession.user_id == user_id,
            AuthSession.revoked_at.is_(None),
            AuthSession.expires_at > at,
        )
    )
    return found is not None


async def user_if_live(session: AsyncSession, session_id: str, user_id: int,
                       at: datetime) -> tuple[User | None, bool]:
    """The user, and whether this session of theirs is live, in one query (a request's
    sign-in check costs no more round trips than reading the user did)."""
    live = (
        select(AuthSession.id)
        .where(AuthSession.id == session_id, AuthSession.user_id == user_id,
               AuthSession.revoked_at.is_(None), AuthSession.expires_at > at)
        .exists()
    )
    row = (await session.execute(select(User, live).where(User.id == user_id))).first()
    if row is None:
        return None, False  # no such user: nothing of theirs is live
    return row[0], bool(row[1])


async def revoke(session: AsyncSession, session_id: str, at: datetime) -> bool:
    """Log one session out; False when it was not live."""
    done = await session.execute(
        update(AuthSession)
        .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=at)
        .execution_options(synchronize_session=False)
    )
    return done.rowcount == 1


async def revoke_all(session: AsyncSession, user_id: int, at: datetime) -> int:
    """Sign an account out everywhere; the number of sessions ended."""
    done = await session.execute(
        update(AuthSession)
        .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None), AuthSession.expires_at > at)
        .values(revoked_at=at)
        .execution_options(synchronize_session=False)
    )
    return done.rowcount
