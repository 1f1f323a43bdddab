"""The keys that sign session tokens, as the core sees them."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


@dataclass(frozen=True)
class SigningKeys:
    """Every key present (each verifies); `active_key_id` signs new tokens."""

    keys: dict[str, Ed25519PrivateKey]
    active_key_id: str

    @property
    def active(self) -> Ed25519PrivateKey:
        return self.keys[self.active_key_id]
