"""All wiring of the identity service. Tests pass their own settings, clock and signing keys."""

from __future__ import annotations


from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from adledger_identity.adapters import http, kafka, sandbox_clock
from adledger_identity.adapters.keys import load_signing_keys
from adledger_identity.adapters.postgres import PostgresIdentityStore
from adledger_identity.config import Settings
from adledger_identity.core import Identity
from adledger_identity.ports.signing import SigningKeys
from adledger_libs.clock import Clock
from adledger_libs.outbox import unit_of_work
from adledger_libs.runtime import ServiceRuntime, clock_for
from adledger_libs.web import Commands, OpenApiDocument

TITLE = "adledger identity"
DESCRIPTION = (
    "The platform's one identity (issue 13): sign in once for a session token every service accepts; users "
    "(people and integrations), API keys (scoped, revocable, shown once, kept hashed) and Business Center roles "
    "(W9), published to every service on identity.events.v1. Every command takes an Idempotency-Key header."
)
LOCAL_PLATFORM_TOKEN = "local-platform-token"


@dataclass(frozen=True)
class Service:
    runtime: ServiceRuntime
    identity: Identity


def wire(settings: Settings | None = None, clock: Clock | None = None, signing: SigningKeys | None = None) -> Service:
    settings = settings or Settings()
    clock = clock or clock_for(settings)
    runtime = ServiceRuntime(settings, migrations=files("adledger_identity") / "migrations", clock=clock)
    loaded: list[SigningKeys] = [signing] if signing is not None else []

    def signing_keys() -> SigningKeys:
        if not loaded:
            directory = Path(settings.signing_keys_dir) if settings.signing_keys_dir else settings.secrets_path() / "identity"
            loaded.append(load_signing_keys(directory, make_first=settings.local))
        return loaded[0]

    identity = Identity(
        clock, PostgresIdentityStore.of, signing_keys, topic=settings.identity_events_topic,
        session_ttl_s=settings.session_ttl_s, sign_in_failures_allowed=settings.sign_in_failures_allowed,
        sign_in_failure_window_s=settings.sign_in_failure_window_s,
    )
    runtime.verify_callers(replicate=False)
    commands = Commands(lambda: runtime.pool, lambda: runtime.relay, service=settings.service_name)
    runtime.add_router(http.router(identity, commands, signing_keys))
    if settings.clock == "sandbox":
        # Issue 17: the identity service coordinates the sandbox clock (never in production: check_safe refuses).
        runtime.add_router(sandbox_clock.router(
            lambda: runtime.pool, schema=settings.sandbox_clock_schema, hop_timeout_s=settings.sandbox_clock_hop_timeout_s,
        ))
    runtime.describe_api(title=TITLE, description=DESCRIPTION, rejections=http.REJECTIONS, public_paths=http.PUBLIC_PATHS)
    runtime.subscribe(*kafka.subscriptions(identity, wallet_topic=settings.wallet_events_topic))
    platform_token = settings.platform_token or (LOCAL_PLATFORM_TOKEN if settings.local else "")

    async def bootstrap() -> None:
        async with unit_of_work(runtime.pool, runtime.relay) as uow:
            await identity.publish_signing_keys(uow)
            await identity.ensure_platform_operator(uow, platform_token)

    runtime.add_startup_job(bootstrap)
    return Service(runtime, identity)


def build(settings: Settings | None = None, clock: Clock | None = None) -> ServiceRuntime:
    return wire(settings, clock).runtime


#: The OpenAPI document (no database needed);
#: `python -m adledger_identity.inject` writes schemas/openapi/identity.json.
DOCUMENT = OpenApiDocument("identity", lambda: build(Settings(profile="local")).http_app())
openapi = DOCUMENT.document
openapi_document = DOCUMENT.text
write_openapi = DOCUMENT.write


if __name__ == "__main__":
    import sys

    DOCUMENT.main(sys.argv)
