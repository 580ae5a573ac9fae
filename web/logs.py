"""Logging: a request id on every line, JSON when configured, and no secrets.

The request id comes from `X-Request-Id` (nginx sets it) or is made here, is echoed
back in the response, and rides a context variable so any log line written while
the request runs carries it.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import secrets
import time

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

_VALID_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# Anything that looks like a credential is masked before a line is written.
# The session cookie (`livemall_session=`) is a token by another name; a co-view invite
# code in a path (`/coview/<code>`) lets whoever reads it into the room.
_SECRETS = re.compile(
    r"(?i)(bearer\s+|token[\"'=:\s]+|password[\"'=:\s]+|secret[\"'=:\s]+|credential[\"'=:\s]+"
    r"|session[\"']?\s*[=:]\s*[\"']?)([^\s\"'&,}]+)"
)
_INVITES = re.compile(r"(/coview/)([^/?\s\"']+)")


def redact(text: str) -> str:
    text = _SECRETS.sub(lambda m: m.group(1) + "***", text)
    return _INVITES.sub(lambda m: m.group(1) + "***", text)


@web.middleware
async def request_id_middleware(request: web.Request, handler) -> web.StreamResponse:
    incoming = request.headers.get("X-Request-Id", "")
    rid = incoming if _VALID_ID.match(incoming) else secrets.token_hex(8)
    token = request_id.set(rid)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers["X-Request-Id"] = rid
        raise
    finally:
        request_id.reset(token)
    response.headers["X-Request-Id"] = rid
    return response


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "msg": redact(record.getMessage()),
        }
        for key in ("method", "path", "status", "duration_ms"):
            if hasattr(record, key):
                line[key] = getattr(record, key)
        if record.exc_info:
            line["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure(json_lines: bool, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(_RequestIdFilter())
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("aioice").setLevel(logging.WARNING)


class AccessLogger(AbstractAccessLogger):
    """One line per request: method, path (never the query string: it may carry a code), status, time."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, duration: float) -> None:
        path = redact(request.path)  # the JSON line's `path` field is written as is
        self.logger.info(
            "%s %s %s %.1fms",
            request.method,
            path,
            response.status,
            duration * 1000,
            extra={
                "method": request.method,
                "path": path,
                "status": response.status,
                "duration_ms": round(duration * 1000, 1),
                "request_id": response.headers.get("X-Request-Id", "-"),
            },
        )
