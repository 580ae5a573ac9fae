"""Domain errors. Each transport maps them to its reply in one place (web/errors.py, rooms/events.py)."""

from __future__ import annotations


class DomainError(Exception):
    code = "error"

    def __init__(self, message: str = "", **detail: object) -> None:
        super().__init__(message or self.code)
        self.message = message or self.code.replace("_", " ")
        self.detail = detail


class NotFound(DomainError):
    code = "not_found"


class Unauthorized(DomainError):
    code = "unauthorized"


class Forbidden(DomainError):
    code = "forbidden"


class Conflict(DomainError):
    code = "conflict"


class Invalid(DomainError):
    """Input that parses but breaks a business rule (HTTP 422)."""

    code = "invalid"


class EmailTaken(Conflict):
    code = "email_taken"


class SoldOut(Conflict):
    code = "sold_out"


class Unavailable(DomainError):
    """A backing service (database, Redis) cannot be reached right now (HTTP 503)."""

    code = "unavailable"


class InsufficientStock(SoldOut):
    """Fewer units are left than were asked for, but some are (HTTP 409, `available`)."""

    code = "insufficient_stock"
