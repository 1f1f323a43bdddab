"""The signing keys, from files: `<key id>.pem` (Ed25519, PKCS#8) in one directory, readable by
the service only. The newest key id (sorted) signs; every key present verifies; rotating is adding
a newer file, retiring is removing the old one once its tokens have expired (one session lifetime).
In the local profile a first key is made when the directory has none; in production the service
refuses to start without one (no key is ever a default)."""

from __future__ import annotations

import fcntl
import uuid
from datetime import UTC, datetime
from pathlib import Path

from adledger_auth import tokens
from adledger_identity.ports.signing import SigningKeys
from adledger_libs.logs import get_logger

log = get_logger(__name__)


class MissingSigningKeyError(RuntimeError):
    pass


def load_signing_keys(directory: Path, *, make_first: bool) -> SigningKeys:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(directory / ".lock", "w") as lock:
        # Two instances starting together on one machine make one key, not two.
        fcntl.flock(lock, fcntl.LOCK_EX)
        files = sorted(directory.glob("*.pem"))
        if not files:
            if not make_first:
                raise MissingSigningKeyError(
                    f"no signing key in {directory}: put an Ed25519 private key there as <key id>.pem "
                    "(python -m adledger_identity.adapters.keys new <directory> makes one)"
                )
            path = directory / f"{new_key_id()}.pem"
            tokens.write_private_key(path, tokens.new_signing_key())
            log.info("signing_key_made", path=str(path))
            files = [path]
    keys = {tokens.check_key_id(path.stem): tokens.load_private_key(path) for path in files}
    return SigningKeys(keys=keys, active_key_id=max(keys))


def new_key_id() -> str:
    """Sortable by creation: the newest file signs."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 3 or sys.argv[1] != "new":
        sys.exit("usage: python -m adledger_identity.adapters.keys new <directory>")
    target = Path(sys.argv[2]) / f"{new_key_id()}.pem"
    tokens.write_private_key(target, tokens.new_signing_key())
    print(target)
