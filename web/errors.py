"""One place that turns failures into JSON errors `{error, message}` with the right status."""

from __future__ import annotations

import json
import logging

import redis.exceptions
from aiohttp import web
from sqlalchemy import exc as sa_exc

from orders import errors as domain

log = logging.getLogger(__name__)

STATUS: dict[type[domain.DomainError], int] = {
    domain.NotFound: 404,
    domain.Unauthorized: 401,
    domain.Forbidden: 403,
    domain.Conflict: 409,
    domain.Invalid: 422,
    domain.Unavailable: 503,
}

# Other packages (live/) register their own error classes here at set-up.
EXTRA: dict[type[Exception], tuple[int, str]] = {}


def dumps(value: object) -> str:
    # UTF-8 as is: Korean, Russian and Chinese text stays readable on the wire.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def json_response(data: object, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=dumps)


def json_error(status: int, code: str, message: str, **extra: object) -> web.Response:
    return json_response({"error": code, "message": message, **extra}, status=status)


def status_of(exc: domain.DomainError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


class BadRequest(domain.DomainError):
    code = "bad_request"


STATUS[BadRequest] = 400


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except domain.DomainError as exc:
        extra = {k: v for k, v in exc.detail.items() if isinstance(v, (str, int, float, list, dict))}
        return json_error(status_of(exc), exc.code, exc.message, **extra)
    except web.HTTPException as exc:
        if exc.status < 400 or not _wants_json(request):
            raise
        code = exc.reason.lower().replace(" ", "_")
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        response = json_error(exc.status, code, exc.reason)
        response.headers.update(headers)
        return response
    except (sa_exc.OperationalError, sa_exc.InterfaceError, redis.exceptions.ConnectionError,
            ConnectionRefusedError, TimeoutError) as exc:
        # A backing service is down: say so, and let the transaction's rollback keep
        # nothing half-written. The client may retry (same Idempotency-Key for orders).
        log.warning("backing service unavailable on %s %s: %s", request.method, request.path, type(exc).__name__)
        response = json_error(503, "unavailable", "a backing service is unavailable; retry shortly")
        response.headers["Retry-After"] = "2"
        return response
    except Exception as exc:
        if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
            response = json_error(503, "unavailable", "the database connection was lost; retry shortly")
            response.headers["Retry-After"] = "2"
            return response
        for cls, (status, code) in EXTRA.items():
            if isinstance(exc, cls):
                response = json_error(status, getattr(exc, "code", code), str(exc) or code)
                if retry_after := getattr(exc, "retry_after", None):  # e.g. OriginUnavailable
                    response.headers["Retry-After"] = str(retry_after)
                return response
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_error(500, "internal", "internal server error")


def _wants_json(request: web.Request) -> bool:
    path = request.path
    return path.startswith(("/api/", "/whip/", "/whep/")) or path in ("/healthz", "/readyz") or (
        "application/json" in request.headers.get("Accept", "")
    )
