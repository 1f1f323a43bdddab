"""Signed provider webhooks (I5): HMAC-SHA256 over `<timestamp>.<raw body>` with a shared secret.

The header is `Adledger-Signature: t=<unix seconds>,v1=<hex digest>` (the shape card processors
use). A notification is accepted only when a v1 digest matches in constant time and its timestamp
is within the tolerance of the injectable clock (a replayed old request is refused). A provider
rolling its secret signs with the old and the new one (two `v1=` parts) until the service uses the
new one; after that the old secret's signature is refused.

The header comes from anyone on the internet (the webhook has no bearer token), so it is parsed
strictly and bounded: ASCII digits only for the timestamp, lower-case hex of the digest's length,
a handful of parts. Anything else is a `MalformedSignatureError`, never a crash.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime

SIGNATURE_HEADER = "Adledger-Signature"
DEFAULT_TOLERANCE_S = 300
#: Longer headers are refused unread; a real one is about 80 characters (two digests: 150).
MAXIMUM_HEADER_LENGTH = 1024
#: `t=` and up to this many `v1=` parts (a provider rolling its secret sends two).
MAXIMUM_DIGESTS = 4
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_DIGEST = re.compile(r"[0-9a-f]{64}")


class SignatureError(Exception):
    """The webhook is not signed by the provider, or not now."""


class MissingSignatureError(SignatureError):
    pass


class BadSignatureError(SignatureError):
    """The header is well formed but does not sign this body with the secret."""


class MalformedSignatureError(BadSignatureError):
    """The header is not `t=<unix seconds>,v1=<hex digest>`."""


class StaleSignatureError(SignatureError):
    pass


def sign(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={_digest(secret, timestamp, body)}"


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def parse(header: str) -> tuple[int, list[str]]:
    """The signed timestamp and the v1 digests of a header; `MalformedSignatureError` otherwise.
    Parts other than `t` and `v1` (a later scheme, `v0`) are ignored, as card processors do."""
    if len(header) > MAXIMUM_HEADER_LENGTH:
        raise MalformedSignatureError(
            f"the {SIGNATURE_HEADER} header is longer than {MAXIMUM_HEADER_LENGTH} characters"
        )
    timestamp: int | None = None
    digests: list[str] = []
    for part in header.split(","):
        name, equals, value = part.strip().partition("=")
        if not equals:
            raise MalformedSignatureError(f"the {SIGNATURE_HEADER} header has a part without '='")
        if name == "t":
            if timestamp is not None or not _TIMESTAMP.fullmatch(value):
                raise MalformedSignatureError(f"the {SIGNATURE_HEADER} header needs one t=<unix seconds>")
            timestamp = int(value)
        elif name == "v1":
            if not _DIGEST.fullmatch(value) or len(digests) == MAXIMUM_DIGESTS:
                raise MalformedSignatureError(
                    f"each v1 of {SIGNATURE_HEADER} is a hex HMAC-SHA256 (at most {MAXIMUM_DIGESTS})"
                )
            digests.append(value)
    if timestamp is None or not digests:
        raise MalformedSignatureError(f"the {SIGNATURE_HEADER} header is t=<unix seconds>,v1=<hex digest>")
    return timestamp, digests


def verify(secret: str, header: str | None, body: bytes, now: datetime, tolerance_s: int = DEFAULT_TOLERANCE_S) -> int:
    """Raise a `SignatureError` unless `header` signs `body` now; answers the signed timestamp."""
    if not header:
        raise MissingSignatureError(f"the {SIGNATURE_HEADER} header is missing")
    timestamp, digests = parse(header)
    expected = _digest(secret, timestamp, body).encode()
    if not any(hmac.compare_digest(expected, digest.encode()) for digest in digests):
        raise BadSignatureError("the signature does not match the body")
    if abs(int(now.timestamp()) - timestamp) > tolerance_s:
        raise StaleSignatureError(f"the signature's timestamp is more than {tolerance_s}s from now (replay?)")
    return timestamp
