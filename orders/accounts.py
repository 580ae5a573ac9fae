"""Users: registration, password checks and changes, password resets, role changes.

Passwords are taken exactly as typed (orders/passwords.py has the rules); names must be
free of control and format characters (orders/visible_text.py).
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from orders.errors import EmailTaken, Forbidden, Unauthorized
from orders.models import Role, User
from orders.passwords import ResetTokens, check_new_password
from orders.visible_text import check_name

# OWASP's minimum Argon2id setting (19 MiB, 2 passes): ~20 ms a hash here, so a
# login storm cannot take a core for long, while offline guessing stays expensive.
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)

# Checked against on unknown e-mails so a miss costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash("not a password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def normalise_email(email: str) -> str:
    return email.strip().lower()


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    password: str,
    name: str,
    role: Role,
    country: str,
    city: str | None = None,
) -> User:
    check_name(name)
    user = User(
        email=normalise_email(email),
        password_hash=hash_password(password),
        name=name,
        role=role,
        country=country.upper(),
        city=city,
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise EmailTaken("an account with this e-mail already exists") from exc
    return user


async def authenticate(session: AsyncSession, email: str, password: str) -> User:
    user = await session.scalar(select(User).where(User.email == normalise_email(email)))
    if user is None:
        verify_password(_DUMMY_HASH, password)
        raise Unauthorized("wrong e-mail or password")
    if not verify_password(user.password_hash, password):
        raise Unauthorized("wrong e-mail or password")
    return user


async def register(
    session: AsyncSession, *, email: str, password: str, name: str, role: Role, country: str, city: str | None = None
) -> User:
    """A new account from a person (the API): the password rules apply."""
    check_new_password(password, email=email, name=name)
    return await create_user(session, email=email, password=password, name=name, role=role, country=country, city=city)


async def change_password(session: AsyncSession, user_id: int, current: str, new: str) -> User:
    """Set a new password for a signed-in user who proves the current one."""
    user = await session.get(User, user_id)
    if user is None:
        raise Unauthorized("unknown user")
    if not verify_password(user.password_hash, current):
        raise Forbidden("the current password is wrong", field="current_password")
    check_new_password(new, email=user.email, name=user.name, field="new_password")
    user.password_hash = hash_password(new)
    return user


async def find_by_email(session: AsyncSession, email: str) -> User | None:
    return await session.scalar(select(User).where(User.email == normalise_email(email)))


async def reset_password(session: AsyncSession, tokens: ResetTokens, token: str, new: str) -> User:
    """Set a new password with a reset token from the e-mail; the token then stops working."""
    user_id = tokens.user_id(token)
    user = await session.get(User, user_id, with_for_update=True)
    if user is None or not tokens.matches(token, user.password_hash):
        raise tokens.invalid()
    check_new_password(new, email=user.email, name=user.name, field="new_password")
    user.password_hash = hash_password(new)
    return user


async def get_user(session: AsyncSession, user_id: int) -> User | None:
    return await session.get(User, user_id)


async def set_role(session: AsyncSession, email: str, role: Role, password: str | None = None) -> User:
    """Create or update a user from the CLI (hosts and admins are made this way)."""
    user = await session.scalar(select(User).where(User.email == normalise_email(email)))
    if user is None:
        if password is None:
            raise Unauthorized("a new user needs --password")
        name = email.split("@")[0]
        check_new_password(password, email=email, name=name)
        return await create_user(session, email=email, password=password, name=name, role=role, country="KR")
    user.role = role
    if password is not None:
        check_new_password(password, email=user.email, name=user.name)
        user.password_hash = hash_password(password)
    return user


def user_public(user: User) -> dict:
    return {"id": user.id, "name": user.name, "role": user.role.value, "country": user.country}


def user_private(user: User) -> dict:
    return {**user_public(user), "email": user.email, "city": user.city}
