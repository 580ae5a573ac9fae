"""Password rules and password-reset tokens.

A new password (registration, change, reset, the CLI) is taken exactly as typed — never
trimmed or normalised, so `"  abcdefgh  "` is that password and `abcdefgh` is another —
and refused when it is too short or long, one of the most common passwords, or the
account's own e-mail address, its local part or the account's name (NIST SP 800-63B
§3.1.1.2: check against a list of known-compromised values; no composition rules).

The list (`common_passwords.txt`, about 8,350 entries of 8 or more characters, most common
first) is the part of Django's 20,000-entry list that the length rule does not already
refuse; it is read once, on first use, into a set (≈1 MB).

A reset token is signed with the service's secret (itsdangerous, HMAC-SHA256), expires,
and carries a fingerprint of the account's current password hash: the reset changes the
hash, so a used (or superseded) link stops working with no table of issued tokens.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache
from importlib import resources

from itsdangerous import BadSignature, URLSafeTimedSerializer

from orders.errors import Invalid

MIN_LENGTH = 8
MAX_LENGTH = 128


class WeakPassword(Invalid):
    """A password anyone would try first: a common one, or the account's e-mail or name."""

    code = "weak_password"


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    text = resources.files("orders").joinpath("common_passwords.txt").read_text("utf-8")
    return frozenset(line for line in text.splitlines() if line and not line.startswith("#"))


def check_new_password(password: str, *, email: str, name: str = "", field: str = "password") -> None:
    """Invalid (422) with a reason the person can act on, or None when the password may be used."""
    if len(password) < MIN_LENGTH:
        raise Invalid(f"the password needs at least {MIN_LENGTH} characters", field=field)
    if len(password) > MAX_LENGTH:
        raise Invalid(f"the password may have at most {MAX_LENGTH} characters", field=field)
    if password.lower() in common_passwords():  # the list is lowercased
        raise WeakPassword("this password is one of the most common passwords; choose another", field=field)
    email = email.strip().casefold()
    local = email.partition("@")[0]
    own = {email, local, name.strip().casefold(), "".join(name.split()).casefold()}
    if password.strip().casefold() in {value for value in own if value}:
        raise WeakPassword("the password must not be your e-mail address or your name", field=field)


class ResetTokens:
    """Signed, expiring password-reset tokens bound to the account's current password."""

    def __init__(self, secret: str, ttl: int) -> None:
        self._secret = secret.encode()
        self._serializer = URLSafeTimedSerializer(
            secret, salt="livemall.password-reset", signer_kwargs={"digest_method": hashlib.sha256}
        )
        self.ttl = ttl

    def _fingerprint(self, password_hash: str) -> str:
        # Not the hash itself: the token is readable (only signed), and an e-mail may be
        # kept for years; a keyed digest of it says nothing about the password.
        return hmac.new(self._secret, password_hash.encode(), hashlib.sha256).hexdigest()[:32]

    def issue(self, user_id: int, password_hash: str) -> str:
        return self._serializer.dumps({"uid": user_id, "ph": self._fingerprint(password_hash)})

    def user_id(self, token: str) -> int:
        """The account the token names (still to be checked with `matches`); Invalid otherwise."""
        try:
            payload = self._serializer.loads(token, max_age=self.ttl)
        except BadSignature:  # includes SignatureExpired
            raise self.invalid() from None
        if not isinstance(payload, dict) or not isinstance(payload.get("uid"), int):
            raise self.invalid()
        return payload["uid"]

    def matches(self, token: str, password_hash: str) -> bool:
        """Whether the token was issued for this password hash (False once it was used)."""
        try:
            payload = self._serializer.loads(token, max_age=self.ttl)
        except BadSignature:
            return False
        return isinstance(payload, dict) and hmac.compare_digest(str(payload.get("ph", "")), self._fingerprint(password_hash))

    @staticmethod
    def invalid() -> Invalid:
        return Invalid("this reset link is invalid, expired or already used; ask for a new one", field="token")
