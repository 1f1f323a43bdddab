"""Signed provider webhooks (I5): HMAC-SHA256 over `<timestamp>.<raw body>` with a shared secret.

The header is `Adledger-Signature: t=<unix seconds>,v1=<hex digest>` (the shape card processors
use). A notification is accepted only when a v1 digest matches in constant time and its timestamp
is within the tolerance of the injectable clock (a replayed old request is refused).
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

SIGNATURE_HEADER = "Adledger-Signature"
DEFAULT_TOLERANCE_S = 300


class SignatureError(Exception):
    """The webhook is not signed by the provider, or not now."""


class MissingSignatureError(SignatureError):
    pass


class BadSignatureError(SignatureError):
    pass


class StaleSignatureError(SignatureError):
    pass


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: str, header: str | None, body: bytes, now: datetime, tolerance_s: int = DEFAULT_TOLERANCE_S) -> int:
    """Raise a `SignatureError` unless `header` signs `body` now; answers the signed timestamp."""
    if not header:
        raise MissingSignatureError(f"the {SIGNATURE_HEADER} header is missing")
    timestamp: int | None = None
    digests: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1":
            digests.append(value)
    if timestamp is None or not digests:
        raise BadSignatureError(f"the {SIGNATURE_HEADER} header is malformed")
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    if not any(hmac.compare_digest(expected.encode(), digest.encode()) for digest in digests):
        raise BadSignatureError("the signature does not match the body")
    if abs(int(now.timestamp()) - timestamp) > tolerance_s:
        raise StaleSignatureError(f"the signature's timestamp is more than {tolerance_s}s from now (replay?)")
    return timestamp
