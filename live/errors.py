"""Domain errors of the media relay; the web layer maps ``code`` to its HTTP replies."""

from __future__ import annotations


class LiveError(Exception):
    """Base class. ``code`` is the machine-readable error for JSON replies."""

    code: str = "live_error"


class BadOffer(LiveError):
    """The SDP offer is malformed, not SDP, or has no usable audio/video (HTTP 400)."""

    code = "bad_offer"


class PublisherExists(LiveError):
    """The show already has a publisher (HTTP 409)."""

    code = "publisher_exists"


class ShowNotLive(LiveError):
    """WHEP on a show that has no publisher (HTTP 409)."""

    code = "show_not_live"


class UnknownSession(LiveError):
    """DELETE of a session this hub does not know (HTTP 404)."""

    code = "unknown_session"


class RelayUnavailable(LiveError):
    """The hub is shutting down and takes no new sessions (HTTP 503)."""

    code = "relay_unavailable"


class TooManyViewers(LiveError):
    """A viewer cap is reached (HTTP 429 for the client's own cap, 503 for the show's
    or the node's): ``scope`` says which."""

    code = "too_many_viewers"

    def __init__(self, message: str, scope: str) -> None:
        super().__init__(message)
        self.scope = scope  # "client", "show" or "node"


class OriginUnavailable(LiveError):
    """An edge could not pull the show from its origin: the origin did not answer, or
    answered with something the edge cannot receive (HTTP 503, retry)."""

    code = "origin_unavailable"
    retry_after = 2  # seconds: by then the origin's claim has expired or moved

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused  # the origin's node refused the connection: it is gone
