"""Credentials, pure: session tokens, API keys, passwords and the Ed25519 keys that sign.

- A **session token** is a JWT (RFC 7519) signed with EdDSA (Ed25519) by the identity service,
  with `kid` in its header; every service verifies it locally with the published public keys
  (PyJWT). Claims: `iss`, `aud`, `sub` (the user), `sid` (the session, revocable), `iat`, `exp`.
- An **API key** is `adk_<key id>_<secret>`; a service looks it up by its SHA-256, which is all
  that is stored or published. The platform operator's local token is an API key too.
- A **password** is kept as scrypt (hashlib, RFC 7914) with a random salt; it never leaves the
  identity service.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ISSUER = "adledger-identity"
AUDIENCE = "adledger"
ALGORITHM = "EdDSA"
API_KEY_PREFIX = "adk_"
#: A bearer token longer than this is refused before any work is done on it.
MAXIMUM_TOKEN_LENGTH = 4096
_KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

# scrypt's cost: 2^14 x 8 x 1 is the interactive-login setting of its paper (about 16 MiB, tens of ms).
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
MINIMUM_PASSWORD_LENGTH = 12
#: How far ahead of this service's clock a token's `iat` may be (clocks of two machines differ a little).
_CLOCK_SKEW_S = 60


class InvalidTokenError(Exception):
    """The token is not one this platform issued, is expired, or is malformed."""


@dataclass(frozen=True)
class SessionClaims:
    user_id: str
    session_id: str
    issued_at: datetime
    expires_at: datetime


# Keys ------------------------------------------------------------------------------------------


def new_signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def public_key_text(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The raw 32-byte public key, base64url without padding (the JWK `x` of an OKP key)."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def public_key_from_text(text: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def load_private_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


def write_private_key(path: Path, key: Ed25519PrivateKey) -> None:
    """Write a private key readable by its owner only (0600), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = path.with_suffix(path.suffix + ".partial")
    partial.write_bytes(private_key_pem(key))
    partial.chmod(0o600)
    partial.replace(path)


def check_key_id(key_id: str) -> str:
    if not _KEY_ID.match(key_id):
        raise ValueError(f"a key id is 1 to 64 letters, digits, '.', '_' or '-': {key_id!r}")
    return key_id


# Session tokens --------------------------------------------------------------------------------


def sign_session(key: Ed25519PrivateKey, key_id: str, claims: SessionClaims) -> str:
    payload = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": claims.user_id,
        "sid": claims.session_id,
        "iat": int(claims.issued_at.timestamp()),
        "exp": int(claims.expires_at.timestamp()),
    }
    return jwt.encode(payload, key, algorithm=ALGORITHM, headers={"kid": key_id})


def looks_like_session_token(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("eyJ")


def token_key_id(token: str) -> str:
    """The `kid` of a session token's header, read before the signature is checked (to pick the key)."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as error:
        raise InvalidTokenError(f"malformed token: {error}") from None
    key_id = header.get("kid")
    if header.get("alg") != ALGORITHM or not isinstance(key_id, str) or not _KEY_ID.match(key_id):
        raise InvalidTokenError("the token is not signed the way this platform signs")
    return key_id


def read_session(token: str, public_key: Ed25519PublicKey, now: datetime) -> SessionClaims:
    """Verify the signature, issuer, audience and expiry against `now` (the injected clock, T1)."""
    try:
        payload = jwt.decode(
            token, public_key, algorithms=[ALGORITHM], audience=AUDIENCE, issuer=ISSUER,
            # Times are checked below against the injected clock (T1), not the machine's.
            options={"require": ["exp", "iat", "sub", "sid", "iss", "aud"], "verify_exp": False, "verify_iat": False,
                     "verify_nbf": False},
        )
    except jwt.PyJWTError as error:
        raise InvalidTokenError(f"the token is not valid: {error}") from None
    expires_at, issued_at = payload["exp"], payload["iat"]
    if not isinstance(expires_at, int) or not isinstance(issued_at, int):
        raise InvalidTokenError("the token's times are not whole seconds")
    if now.timestamp() >= expires_at:
        raise InvalidTokenError("the token has expired")
    if issued_at > now.timestamp() + _CLOCK_SKEW_S:
        raise InvalidTokenError("the token is issued in the future")
    subject, session = payload["sub"], payload["sid"]
    if not isinstance(subject, str) or not isinstance(session, str):
        raise InvalidTokenError("the token names no user or session")
    return SessionClaims(
        user_id=subject, session_id=session,
        issued_at=datetime.fromtimestamp(issued_at, now.tzinfo), expires_at=datetime.fromtimestamp(expires_at, now.tzinfo),
    )


# API keys --------------------------------------------------------------------------------------


def new_api_key(key_id: str) -> str:
    return f"{API_KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def token_digest(token: str) -> str:
    """The SHA-256 of a bearer token, hex: what is stored and published instead of the token. An
    API key has 256 random bits, so a fast hash is enough (no password stretching needed)."""
    return hashlib.sha256(token.encode("utf-8", errors="surrogatepass")).hexdigest()


# Passwords -------------------------------------------------------------------------------------


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32)
    return "$".join(
        ["scrypt", str(_SCRYPT_N), str(_SCRYPT_R), str(_SCRYPT_P), base64.b64encode(salt).decode(), base64.b64encode(digest).decode()]
    )


def check_password(password: str, stored: str) -> bool:
    """Compare in constant time; an unparsable stored hash matches nothing."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        computed = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=len(base64.b64decode(digest))
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(computed, base64.b64decode(digest))


#: A password check for a user that does not exist costs the same as a real one (no timing oracle).
DUMMY_PASSWORD_HASH = hash_password(secrets.token_urlsafe(16))
