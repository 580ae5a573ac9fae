"""TURN credentials minted per session with coturn's shared-secret REST scheme.

username = "<expiry unix time>:<label>", password = base64(HMAC-SHA1(secret, username)).
coturn (`use-auth-secret`, `static-auth-secret`) recomputes the same HMAC, so the
secret itself never leaves the server and a leaked credential dies at its expiry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class IceServer:
    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None

    def as_json(self) -> dict:
        out: dict = {"urls": list(self.urls)}
        if self.username is not None:
            out.update(username=self.username, credential=self.credential)
        return out

    def link_headers(self) -> list[str]:
        """RFC 9725 section 4.6: one `Link: <url>; rel="ice-server"` per URL."""
        values = []
        for url in self.urls:
            value = f'<{url}>; rel="ice-server"'
            if self.username is not None:
                value += f'; username="{self.username}"; credential="{self.credential}"; credential-type="password"'
            values.append(value)
        return values


def mint(secret: str, urls: tuple[str, ...], label: str, ttl: int, now: float | None = None) -> IceServer:
    expiry = int((time.time() if now is None else now) + ttl)
    username = f"{expiry}:{label}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return IceServer(urls=urls, username=username, credential=base64.b64encode(digest).decode())


def ice_servers_for(
    label: str, *, stun_urls: tuple[str, ...], turn_urls: tuple[str, ...], turn_secret: str, turn_ttl: int
) -> list[IceServer]:
    servers = []
    if stun_urls:
        servers.append(IceServer(urls=stun_urls))
    if turn_urls and turn_secret:
        servers.append(mint(turn_secret, turn_urls, label, turn_ttl))
    return servers
