"""Settings: one frozen dataclass built once from CLI flags and LIVEMALL_* variables."""

from __future__ import annotations

import dataclasses
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

DEFAULT_DATABASE = "sqlite+aiosqlite:///livemall.db"


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    database: str = DEFAULT_DATABASE
    redis: str | None = None  # None: in-process pub/sub, one process only
    # Signs session tokens. Without one configured a random key is made per process;
    # `livemall serve` then keeps one in livemall.secret (web/cli.py) so sign-ins
    # survive restarts. Processes on several machines must share LIVEMALL_SECRET.
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    token_ttl: int = 7 * 24 * 3600  # seconds
    recordings_dir: Path = Path("recordings")
    # Product images (orders/product_images.py, web/api_images.py): where the resized files
    # are kept, the largest upload taken (bytes; the request's other limits do not apply
    # to the upload route), the most pixels an image may have (checked before decoding:
    # decompression bombs) and the seconds an upload may take to arrive.
    media_dir: Path = Path("media")
    image_max_bytes: int = 8 * 1024 * 1024
    image_max_pixels: int = 40_000_000
    image_upload_timeout: float = 60.0
    # ... or in an S3-compatible bucket instead of media_dir: media_store "s3" and a bucket
    # (an empty endpoint is AWS; empty keys: boto3's own chain, e.g. an instance role).
    media_store: str = "disk"  # "disk" or "s3"
    s3_bucket: str = ""
    s3_endpoint_url: str = ""
    s3_region: str = ""
    s3_prefix: str = ""
    s3_access_key: str = field(default="", repr=False)
    s3_secret_key: str = field(default="", repr=False)
    ice_servers: tuple[str, ...] = ()  # stun:/turn: URLs for aiortc (user:pass@ allowed for TURN)
    public_url: str = ""  # base URL of invite links; empty: relative links (the Host header is never trusted)
    max_request_bytes: int = 256 * 1024
    # HTTP rate limits per client (web/ratelimit.py; `limits` notation, a moving window).
    rate_limits: bool = True
    rate_limit_auth: str = "20/minute"  # sign-in and registration attempts per address
    rate_limit_media: str = "60/minute"  # WHIP/WHEP offers and hang-ups per address
    rate_limit_write: str = "300/minute"  # other API writes per signed-in user (else address)
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")  # addresses/networks whose X-Forwarded-For is believed
    # Failed sign-ins per account, from all addresses together (the right password is
    # refused too until the window moves on; a password reset clears it).
    rate_limit_login_account: str = "10/15 minutes"
    # E-mail (web/mail.py, aiosmtplib): password resets and notifications. No smtp_host:
    # requests are answered as usual, mails stay queued and nothing is sent.
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_user: str = ""
    smtp_password: str = field(default="", repr=False)
    smtp_timeout: float = 10.0
    mail_from: str = "livemall <no-reply@livemall.invalid>"
    # E-mail notifications (orders/notifications.py queues, web/notifier.py sends): seconds
    # between polls of the queue, the first retry's delay (doubled each time up to the
    # cap), tries before giving up, how long a worker's claim on a mail lasts, mails per
    # claim, and the age after which a mail not yet sent is dropped instead (too late).
    mail_poll_interval: float = 2.0
    mail_retry_base: float = 30.0
    mail_retry_max: float = 3600.0
    mail_max_attempts: int = 20
    mail_claim_lease: float = 120.0
    mail_batch: int = 20
    mail_max_age: float = 2 * 24 * 3600.0
    password_reset_ttl: int = 3600  # seconds a reset link works (and only once)
    password_reset_mails: str = "3/hour"  # reset e-mails one account receives at most
    # Realtime rooms
    chat_max_chars: int = 500
    chat_rate_count: int = 5
    chat_rate_window: float = 10.0
    coview_member_limit: int = 50
    coview_ttl: int = 24 * 3600
    socketio_origins: tuple[str, ...] = ()  # Socket.IO CORS origins; empty: same origin only
    socketio_max_bytes: int = 64 * 1024  # Engine.IO max_http_buffer_size: larger packets are refused
    room_batch_window: float = 0.05  # seconds a busy room's events are gathered into one packet
    presence_timeout: float = 10.0  # seconds after which a dead process's viewers stop counting
    # One client's share (docs/operations.md, "Limits per client"). An address is the
    # client's (web/client_address.py: X-Forwarded-For from trusted proxies); IPv6 per /64.
    sockets_per_address: int = 20  # Socket.IO connections open at once from one address
    anonymous_viewers_per_address: int = 5  # anonymous viewers one address adds to counts and reports
    reactions_per_address: int = 10  # reaction taps a second, shared by all sockets of one address
    http_header_timeout: float = 15.0  # seconds to send a whole request head (and keep-alive idle time)
    http_body_timeout: float = 30.0  # seconds to send a request's body once its head is in (408 after)
    http_max_connections: int = 8192  # TCP connections the node holds at once (beyond: closed at accept)
    http_connections_per_address: int = 64  # of those, from one address not a trusted proxy
    # Orders
    order_max_quantity: int = 100
    order_expiry: int = 30 * 60  # seconds an unpaid order holds its stock
    payment_webhook_secret: str = field(default="", repr=False)
    payment_webhook_tolerance: int = 300  # seconds a signed webhook timestamp may be off
    # The sandbox card processor (test cards, "paid" without money): tests and demos only.
    # Off unless set; the app refuses to start with it on and an https:// public_url.
    payment_sandbox: bool = False
    # Stripe card payments (orders/stripe_payments.py): offered only with both keys (and a
    # public_url to send buyers back to); one key without the other refuses to start.
    stripe_secret_key: str = field(default="", repr=False)
    stripe_webhook_secret: str = field(default="", repr=False)  # whsec_…, checks Stripe-Signature
    stripe_api_base: str = ""  # tests only: a local Stripe-shaped server; empty: https://api.stripe.com
    stripe_timeout: float = 20.0  # seconds one call to Stripe may take before the buyer gets 503
    stripe_max_network_retries: int = 2  # retries of a failed call, each with the same Idempotency-Key
    quote_min_price_share: float = 0.5  # a quote below this share of list price (or at 0) needs an admin
    order_sweep_interval: float = 5.0  # seconds between expiry sweeps of unpaid orders
    quote_order_expiry: int = 7 * 24 * 3600  # seconds an accepted quote's order awaits payment
    auto_migrate: bool = True  # apply pending migrations at start-up
    log_json: bool = False
    # Graceful drain: after SIGTERM, seconds of refusing new sessions (so the balancer
    # notices /readyz) before connections close; the whole exit stays within shutdown_grace.
    drain_settle: float = 3.0
    # WHIP/WHEP: origins allowed to call them cross-origin (none: no CORS headers).
    cors_origins: tuple[str, ...] = ()
    # TURN for viewers behind NATs: coturn's REST scheme (use-auth-secret).
    turn_urls: tuple[str, ...] = ()  # e.g. turn:turn.example.org:3478?transport=udp
    turn_secret: str = field(default="", repr=False)
    turn_ttl: int = 6 * 3600
    # Several nodes: this node's name (prefix of its Socket.IO session ids, which nginx
    # routes on), the URL other nodes reach it at, and the public IP its ICE candidates announce.
    node_name: str = "n1"
    node_url: str = ""
    public_ip: str = ""
    udp_ports: str = ""  # UDP range for WebRTC media, e.g. "40000-40100"; empty: any port
    orphan_check_interval: float = 2.0  # seconds between checks for shows on air no node holds
    # Edge relaying: a WHEP POST for a show live on another node makes this node pull the
    # show from its origin (once, shared by all its viewers) and serve the viewer itself,
    # instead of forwarding the request; one show then scales past one process's fan-out.
    edge_pull: bool = False
    edge_linger: float = 10.0  # seconds a pulled show with no viewer here is kept
    shutdown_grace: float = 10.0
    # Seconds a show whose publisher was lost (network drop, reload, crash) stays
    # "reconnecting" for its host to publish again before it ends.
    publisher_grace: float = 60.0
    # WHEP viewer sessions: caps per client (an address; an IPv6 /64 counts as one),
    # per show and per node (0: no cap), and seconds a viewer may take to connect
    # before its session and UDP port are freed.
    whep_per_address: int = 10
    whep_per_show: int = 0
    whep_per_node: int = 2000
    viewer_connect_timeout: float = 10.0

    @property
    def is_sqlite(self) -> bool:
        return self.database.startswith("sqlite")


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
_TUPLES = {name for name, f in _FIELDS.items() if f.type.startswith("tuple")}


def _coerce(name: str, raw: Any) -> Any:
    default = _FIELDS[name].default
    kind = _FIELDS[name].type
    if isinstance(raw, str):
        if kind in ("int",) or isinstance(default, int) and not isinstance(default, bool):
            return int(raw)
        if kind == "float" or isinstance(default, float):
            return float(raw)
        if isinstance(default, bool):
            return raw.strip().lower() in ("1", "true", "yes", "on")
        if name in ("recordings_dir", "media_dir"):
            return Path(raw)
        if name in _TUPLES:
            return tuple(s.strip() for s in raw.split(",") if s.strip())
    if name in _TUPLES and isinstance(raw, (list, tuple)):
        return tuple(raw)
    return raw


def load_settings(overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from LIVEMALL_<NAME> variables, then explicit overrides (CLI flags) on top."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name in _FIELDS:
        raw = environ.get(f"LIVEMALL_{name.upper()}")
        if raw is not None and raw != "":
            values[name] = _coerce(name, raw)
    for name, raw in (overrides or {}).items():
        if raw is not None:
            values[name] = _coerce(name, raw)
    return Settings(**values)
