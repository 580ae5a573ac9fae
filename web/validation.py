"""Request bodies parsed into pydantic models: unknown fields, wrong types and
over-long strings are refused with 422 and a list of the fields at fault."""

from __future__ import annotations

import json
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from orders.errors import Invalid
from web.errors import BadRequest

M = TypeVar("M", bound=BaseModel)


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
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    return validate(model, data)


def int_param(request: web.Request, name: str) -> int:
    raw = request.match_info[name]
    if not raw.isdigit() or len(raw) > 12:
        raise web.HTTPNotFound(reason="Not Found")
    return int(raw)
