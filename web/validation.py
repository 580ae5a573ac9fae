"""Request bodies parsed into pydantic models: unknown fields, wrong types and
over-long strings are refused with 422 and a list of the fields at fault."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Annotated, TypeVar

from aiohttp import web
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from orders.errors import Invalid
from orders.models import MAX_ID
from web.errors import BadRequest

M = TypeVar("M", bound=BaseModel)
Id = Annotated[int, Field(ge=1, le=MAX_ID)]  # a row id in a body: beyond MAX_ID is 422, not a 500


def _in_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("give a time zone, e.g. 2026-12-01T10:00:00Z")
    return value.astimezone(timezone.utc)


# A moment in a body: an ISO 8601 string with its zone (a bare local time is ambiguous
# for users in 67 countries, so it is refused), kept in UTC.
Instant = Annotated[datetime, Field(strict=False), AfterValidator(_in_utc)]


class Body(BaseModel):
    """Base of every request body: strict types (no "5" for 5) and no unknown fields."""

    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)


def _fields(exc: ValidationError) -> list[dict]:
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or "body", "message": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]


def validate(model: type[M], data: object) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields = _fields(exc)
        summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields[:5])
        raise Invalid(summary, fields=fields) from None


async def parse_body(request: web.Request, model: type[M]) -> M:
    if request.content_type != "application/json":
        raise BadRequest("send the body as application/json")
    raw = await request.read()  # bounded by the app's client_max_size (413 beyond)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:  # ValueError: bad JSON, or an int of > 4300 digits
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadRequest("body is not valid JSON: nested too deeply") from None
    # json.loads refuses a raw NUL inside a string, so one can only come as the escape:
    # the walk over the parsed body is needed only when the bytes hold one.
    if b"\\u0000" in raw and _has_nul(data):
        raise Invalid("text must not contain NUL characters")  # PostgreSQL cannot store them
    return validate(model, data)


def _has_nul(data: object) -> bool:
    """Whether any string (key or value) in parsed JSON holds U+0000; iterative, as the
    nesting may be as deep as the parser allowed."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def int_param(request: web.Request, name: str) -> int:
    value = id_or_none(request.match_info[name])
    if value is None:
        raise web.HTTPNotFound(reason="Not Found")
    return value


def id_or_none(raw: str) -> int | None:
    """A URL's id segment as a row id; None for anything else ("²" and "١" are
    str.isdigit() but not ids; beyond MAX_ID names no row)."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 10:
        return None
    value = int(raw)
    return value if 1 <= value <= MAX_ID else None
