"""Records between services, signed by the service that produced them (issue 12).

A record that moves money on another service's say — a hold or payout asked of the wallet on
`wallet.commands.v1`, a paid invoice the wallet credits, an invoice asked of the invoicing
service — must come from a service that may ask, not merely over Kafka (anyone who can produce to
a topic could write one). So each such record carries a header `adledger-signature`: a compact JWS
(EdDSA, Ed25519) by the producing service's own key, over the record's topic and the SHA-256 of
its key and value. The consumer checks it against the public keys it trusts, that the signer is one
the message type names (`Message.SIGNED_BY`) and, for a command, that its `requested_by` is the
signer. A record that fails is dead-lettered with the reason and changes nothing.

Keys: each service has its own Ed25519 key, `<secrets>/services/<service>.key` (0600), and every
consumer trusts the public keys `<secrets>/services/*.pub` (a Kubernetes deployment mounts its
Secret and a ConfigMap of the public keys there). The local profile makes a service's key pair on
first start; production refuses to start without it. Kafka ACLs (one principal per service) are the
other line of defence: they stop a stranger producing at all; this names which service asked.
"""

from __future__ import annotations

import fcntl
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from adledger_auth import tokens

HEADER_SIGNATURE = "adledger-signature"
_ALGORITHM = "EdDSA"
#: How often a verifier looks in the key directory again for a signer it does not know yet (a
#: service started after it made its key then).
_RESCAN_S = 2.0


def record_digest(topic: str, key: bytes | None, value: bytes) -> str:
    digest = hashlib.sha256()
    for part in (topic.encode(), key or b"", value):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


@dataclass(frozen=True)
class RecordSigner:
    """A service's signing key; `sign` gives the header value for one record."""

    principal: str
    key: Ed25519PrivateKey

    def sign(self, topic: str, key: bytes | None, value: bytes) -> str:
        # No time in the payload: an outbox row published again after a crash gets the same
        # signature (EdDSA is deterministic), so a re-send is byte for byte the same record.
        payload = {"sub": self.principal, "top": topic, "dig": record_digest(topic, key, value)}
        return jwt.encode(payload, self.key, algorithm=_ALGORITHM, headers={"kid": self.principal})


class SignatureError(Exception):
    """The record is not signed by a service that may send it."""


class RecordVerifier:
    """The public keys of the services, read from a directory of `<principal>.pub` files."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._scanned_at = 0.0

    def verify(self, header: str | None, topic: str, key: bytes | None, value: bytes) -> str:
        """The signing service's name; raises `SignatureError` with the reason."""
        if not header:
            raise SignatureError(f"unsigned: a {HEADER_SIGNATURE} header is required on this record")
        try:
            principal = jwt.get_unverified_header(header).get("kid")
        except jwt.PyJWTError as error:
            raise SignatureError(f"malformed {HEADER_SIGNATURE}: {error}") from None
        if not isinstance(principal, str):
            raise SignatureError(f"{HEADER_SIGNATURE} names no signer")
        public = self._key(principal)
        if public is None:
            raise SignatureError(f"signed by {principal[:64]!r}, which is not a trusted service")
        try:
            payload = jwt.decode(header, public, algorithms=[_ALGORITHM], options={"require": ["sub", "top", "dig"]})
        except jwt.PyJWTError as error:
            raise SignatureError(f"the signature is not valid: {error}") from None
        if payload["sub"] != principal or payload["top"] != topic or payload["dig"] != record_digest(topic, key, value):
            raise SignatureError("the signature is for another record")
        return principal

    def _key(self, principal: str) -> Ed25519PublicKey | None:
        found = self._keys.get(principal)
        if found is None and time.monotonic() - self._scanned_at > _RESCAN_S:
            self._scan()
            found = self._keys.get(principal)
        return found

    def _scan(self) -> None:
        self._scanned_at = time.monotonic()
        keys: dict[str, Ed25519PublicKey] = {}
        for path in sorted(self._directory.glob("*.pub")):
            try:
                keys[path.stem] = tokens.public_key_from_text(path.read_text().strip())
            except (ValueError, OSError):
                continue  # a file being written, or not a key: skipped until it is one
        self._keys = keys


def check_signed_message(verifier: RecordVerifier, message: Any, headers: dict[str, str], topic: str,
                         key: bytes | None, value: bytes) -> None:
    """Raise `SignatureError` unless `message` (a decoded record) is signed by a service its type
    allows, and a command's `requested_by` names that service."""
    allowed: frozenset[str] = type(message).SIGNED_BY
    principal = verifier.verify(headers.get(HEADER_SIGNATURE), topic, key, value)
    if principal not in allowed:
        raise SignatureError(f"{principal} may not send {type(message).MESSAGE_TYPE} (only {', '.join(sorted(allowed))})")
    requested_by = getattr(message, "requested_by", None)
    if requested_by is not None and requested_by != principal:
        raise SignatureError(f"signed by {principal} but says it was requested by {requested_by}")


def service_key(directory: Path, principal: str, *, make: bool) -> RecordSigner:
    """The service's signing key, made (with its public half beside it) when `make` and missing."""
    tokens.check_key_id(principal)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    private_path, public_path = directory / f"{principal}.key", directory / f"{principal}.pub"
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not private_path.exists():
            if not make:
                raise FileNotFoundError(
                    f"no signing key for {principal} at {private_path}: records this service sends to others are "
                    "signed with it (make one with `python -m adledger_auth.signatures new <directory> <service>`)"
                )
            key = tokens.new_signing_key()
            tokens.write_private_key(private_path, key)
            public_path.write_text(tokens.public_key_text(key) + "\n")
        key = tokens.load_private_key(private_path)
        if not public_path.exists():
            public_path.write_text(tokens.public_key_text(key) + "\n")
    return RecordSigner(principal, key)


def signed_types(messages: Sequence[type[Any]]) -> dict[str, frozenset[str]]:
    """event-type → the services that may sign it, for the message types that must be signed."""
    return {message.MESSAGE_TYPE: message.SIGNED_BY for message in messages if message.SIGNED_BY}


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 4 or sys.argv[1] != "new":
        sys.exit("usage: python -m adledger_auth.signatures new <directory> <service>")
    print(service_key(Path(sys.argv[2]), sys.argv[3], make=True).principal)
