"""The console's session: the user's one platform token, kept server-side signed in an HttpOnly,
SameSite=Strict cookie (HMAC-SHA256 over the content), and a CSRF token every form carries back."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import asdict, dataclass

COOKIE = "adledger_console"
#: The largest cookie value read: a session token is well under 2 KB.
MAX_COOKIE_CHARS = 4096


@dataclass(frozen=True)
class Session:
    csrf: str
    token: str = ""
    user_id: str = ""

    @property
    def signed_in(self) -> bool:
        return bool(self.token)


def new_session() -> Session:
    return Session(csrf=secrets.token_urlsafe(24))


class Signer:
    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(("adledger-console:" + secret).encode()).digest()

    def dump(self, session: Session) -> str:
        payload = base64.urlsafe_b64encode(json.dumps(asdict(session), separators=(",", ":")).encode()).decode()
        return f"{payload}.{self._mac(payload)}"

    def load(self, value: str | None) -> Session | None:
        """The session of a cookie; None when absent, too long, altered or malformed."""
        if not value or len(value) > MAX_COOKIE_CHARS or "." not in value:
            return None
        payload, _, mac = value.rpartition(".")
        if not hmac.compare_digest(mac, self._mac(payload)):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(payload.encode()))
            session = Session(
                csrf=str(data["csrf"]), token=str(data.get("token", "")), user_id=str(data.get("user_id", ""))
            )
        except (ValueError, KeyError, TypeError):
            return None
        return session if session.csrf else None

    def _mac(self, payload: str) -> str:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).hexdigest()
