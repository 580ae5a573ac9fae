"""Refusals specific to the rooms. They subclass the shared domain errors so HTTP
(web/errors.py) and Socket.IO acks (rooms/events.py) map them in one place each.

An ack's `message` is put in the socket's language by the transport, as HTTP errors are
(web/errors.py, `localize_reply`): this module, like orders/, knows no languages."""

from __future__ import annotations

from orders.errors import Conflict, DomainError, Forbidden, NotFound, Unavailable


class Muted(Forbidden):
    code = "muted"


class RateLimited(DomainError):
    """Too many messages in the window; `retry_after` says when the next is accepted."""

    code = "rate_limited"


class SlowMode(DomainError):
    code = "slow_mode"


class CoviewExpired(NotFound):
    code = "coview_expired"


class CoviewFull(Conflict):
    code = "coview_full"


class ShowEnded(Conflict):
    code = "show_ended"


class Draining(Unavailable):
    """This node is shutting down; the client should connect again (elsewhere)."""

    code = "draining"
