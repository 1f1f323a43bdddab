"""The one-time init of docker-compose.yml's secrets: `docker compose run --rm init` (see docker-compose.yml).

Writes, into the directory given (deploy/compose/secrets on the host, git-ignored), what no file in the
repository may hold:

- `kafka/<principal>.password`: a random SCRAM-SHA-512 password for every Kafka principal of the topic
  catalogue (`python -m adledger_libs.kafka_security principals`: each service, adserver, operator, admin);
- `postgres.password`, and `database-url` (the services' ADLEDGER_DATABASE_URL with that password);
- `platform-token` (the identity's bootstrap operator key), `payment-webhook-secret` (invoicing) and
  `console-session-secret` (signs the finance console's session cookies);
- `keys/<service>/services/`: every signing service's public key, and the service's own private key if it
  signs records (every service a message type's `SIGNED_BY` names); `keys/identity/identity/<id>.pem`: the key that signs
  session tokens. Each service mounts only its own `keys/<service>`.

An existing file is never overwritten (run it again after adding a principal: only the new one is made).
Secrets are files mode 0444 inside a directory mode 0700 (only root on the host reads them; a container
reads the single files mounted into it); key directories belong to the services' user (10001), which
takes a lock file in them.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

from adledger_auth.signatures import service_key, signed_types
from adledger_contracts import ALL_MESSAGES
from adledger_identity.adapters.keys import load_signing_keys
from adledger_libs.kafka_security import principals

SERVICES = ("identity", "wallet", "campaign", "invoicing", "order_escrow", "spend_consumer", "sends")
#: The services that sign records others act on: every one a message type's SIGNED_BY names.
SIGNERS = tuple(sorted({service for allowed in signed_types(ALL_MESSAGES).values() for service in allowed}))
SERVICE_UID = 10001


def _write(path: Path, value: str) -> bool:
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value + "\n")
    path.chmod(0o444)
    return True


def _own(path: Path) -> None:
    if os.geteuid() == 0:
        for item in (path, *path.rglob("*")):
            os.chown(item, SERVICE_UID, SERVICE_UID)


def main(target: Path) -> list[str]:
    target.mkdir(parents=True, exist_ok=True)
    target.chmod(0o700)
    made: list[str] = []
    for principal in principals():
        if _write(target / "kafka" / f"{principal}.password", secrets.token_urlsafe(36)):
            made.append(f"kafka/{principal}.password")
    if _write(target / "postgres.password", secrets.token_urlsafe(36)):
        made.append("postgres.password")
    password = (target / "postgres.password").read_text().strip()
    if _write(target / "database-url", f"postgresql://adledger:{password}@postgres:5432/adledger"):
        made.append("database-url")
    for name in ("platform-token", "payment-webhook-secret", "console-session-secret"):
        if _write(target / name, secrets.token_urlsafe(36)):
            made.append(name)
    # Record-signing keys: made once in a private place, then each service's directory gets the public
    # halves of all signers and its own private half.
    master = target / "keys" / ".signers"
    for signer in SIGNERS:
        service_key(master, signer, make=True)
    for service in SERVICES:
        own = target / "keys" / service / "services"
        own.mkdir(parents=True, exist_ok=True, mode=0o700)
        for signer in SIGNERS:
            _write(own / f"{signer}.pub", (master / f"{signer}.pub").read_text().strip())
        if service in SIGNERS and not (own / f"{service}.key").exists():
            (own / f"{service}.key").write_bytes((master / f"{service}.key").read_bytes())
            (own / f"{service}.key").chmod(0o600)
            made.append(f"keys/{service}/services/{service}.key")
    load_signing_keys(target / "keys" / "identity" / "identity", make_first=True)
    for service in SERVICES:
        _own(target / "keys" / service)
    return made


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python init_secrets.py <directory>")
    for name in main(Path(sys.argv[1])):
        print(f"made {name}")
