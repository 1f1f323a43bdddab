"""Who is calling, and may they: the one implementation every service uses (issue 13).

- `roles`: the Business Center roles and what each may do (W9), pure.
- `tokens`: session tokens (EdDSA-signed JWTs), API keys and passwords, pure.
- `replica`: a service's local copy of `identity.events.v1` (users, memberships, API keys,
  revoked sessions, signing keys), kept by its TransactionalConsumer.
- `callers`: from a bearer token to a `Caller`, verified locally against the replica.
- `http`: the FastAPI side: the token checked before the body is read, the caller as a dependency.
- `signatures`: records between services signed by the producing service's key, so a consumer
  knows which service asked (a wallet command, a paid invoice), not only that it came over Kafka.
"""
