"""Running a service: the same start, serve and stop for all five.

Start: connect to PostgreSQL, migrate (the library's tables, then the service's), create the
catalogue's topics, start the idempotent producer and the outbox relay. Serve: the consumer
(if the service subscribes to anything), background jobs, and HTTP, until SIGTERM or SIGINT.
A task that fails is a bug: the service logs it and exits non-zero rather than limp on.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from datetime import datetime, timedelta
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any
from importlib.resources.abc import Traversable

import asyncpg
import uvicorn
from aiokafka import AIOKafkaProducer
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from adledger_contracts.topics import CATALOGUE, TopicSpec
from adledger_libs.clock import Clock, SystemClock
from adledger_libs.consumer import Subscription, TransactionalConsumer
from adledger_libs.db import LIBRARY_MIGRATIONS, connect, create_pool, migrate
from adledger_libs.events import HEADER_EVENT_TYPE
from adledger_libs.http import build_app
from adledger_libs.kafka import ensure_topics, make_producer
from adledger_libs.logs import configure_logging, get_logger
from adledger_libs.outbox import OutboxRelay
from adledger_libs.sandbox_clock import NextDue, SandboxClock
from adledger_libs.settings import ServiceSettings
from adledger_libs.web import RejectionTable

log = get_logger(__name__)

BackgroundJob = Callable[[], Awaitable[None]]
ErrorHandler = Callable[[Request, Exception], Awaitable[Response]]


#: How long each step of shutting down may take before it is cut short (a service that is asked
#: to stop never hangs: an SRE's SIGTERM, a test's teardown). Money is safe either way: what was
#: not committed is read again from the stored positions at the next start.
SHUTDOWN_STEP_S = 10.0


async def _bounded(step: Awaitable[object], what: str, seconds: float = SHUTDOWN_STEP_S) -> bool:
    """Await one shutdown step for at most `seconds`; False (and a warning) when it was cut short."""
    try:
        await asyncio.wait_for(step, seconds)
        return True
    except TimeoutError:
        log.warning("shutdown_step_cut_short", step=what, after_s=seconds)
        return False


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the runtime owns shutdown of every task."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def install_signal_handlers(self) -> None:  # older uvicorn
        return None


def clock_for(settings: ServiceSettings) -> Clock:
    """The clock the settings ask for: the wall clock, or the shared sandbox clock (issue 17)."""
    if settings.clock == "sandbox":
        return SandboxClock(settings.sandbox_clock_schema, poll_interval_s=settings.sandbox_clock_poll_interval_ms / 1000)
    return SystemClock()


class _PeriodicJob:
    """A periodic job's state in a sandbox: the sandbox time it last ran for, and a wake-up when the time moved."""

    def __init__(self, name: str, next_due: NextDue | None) -> None:
        self.name = name
        self.next_due = next_due
        self.ran_for: datetime | None = None
        self.moved = asyncio.Event()


class ServiceRuntime:
    def __init__(
        self,
        settings: ServiceSettings,
        *,
        migrations: Traversable | None,
        topics: Sequence[TopicSpec] = CATALOGUE,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.clock: Clock = clock or clock_for(settings)
        self._periodic: list[_PeriodicJob] = []
        self._migrations = migrations
        self._topics = tuple(topics)
        self._subscriptions: list[Subscription] = []
        self._routes: list[BaseRoute] = []
        self._background: list[tuple[str, BackgroundJob]] = []
        self._error_handlers: dict[type[Exception], ErrorHandler] = {}
        self._startup_jobs: list[BackgroundJob] = []
        self._shared_schemas: list[tuple[str, list[tuple[str, Traversable]]]] = []
        # FastAPI (issue 13): routers, the service's rejections, and whether callers are verified.
        self._routers: list[Any] = []
        self._http_title = f"adledger {settings.service_name.replace('_', ' ')}"
        self._http_description = ""
        self._rejections: RejectionTable = ()
        self._public_paths: list[str] = []
        self._authenticator: Any = None
        self._pool: asyncpg.Pool | None = None
        self._producer: AIOKafkaProducer | None = None
        self._relay: OutboxRelay | None = None
        self.http_server: _Server | None = None

    # Wiring, done by a service's inject.py before start.
    def subscribe(self, *subscriptions: Subscription) -> None:
        self._subscriptions.extend(subscriptions)

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        """What the service consumes: each topic and message type with its handler (the runtime's
        consumer reads exactly these; tests walk them to send every consumed type hostile records)."""
        return tuple(self._subscriptions)

    def add_routes(self, *routes: BaseRoute) -> None:
        self._routes.extend(routes)

    def add_router(self, router: Any) -> None:
        """A FastAPI router of the service's API."""
        self._routers.append(router)

    def describe_api(
        self, *, title: str, description: str, rejections: RejectionTable = (), public_paths: Sequence[str] = ()
    ) -> None:
        """The API's title and description (in its OpenAPI document), how the core's refusals are
        answered, and the routes that need no bearer token."""
        self._http_title = title
        self._http_description = description
        self._rejections = rejections
        self._public_paths = list(public_paths)

        async def prune_idempotency_answers() -> None:
            from adledger_libs.web import prune_idempotent_requests

            retention = timedelta(days=self.settings.idempotency_retention_days)
            # The answers are stamped by the database's clock (`created_at default now()`), so their age is
            # measured by it too: on the sandbox clock (issue 17) a 30-day advance must not forget the answers
            # written a second ago.
            older_than = await self.pool.fetchval("select now()") if self.sandbox_clock is not None else None
            await prune_idempotent_requests(self.pool, (older_than or self.clock.now()) - retention)

        self.add_periodic_job("idempotency_pruning", prune_idempotency_answers, 3_600_000)

    def verify_callers(self, *, replicate: bool = True) -> Any:
        """Callers are verified locally against a replica of the platform's identity: its
        `identity.events.v1` subscriptions join the service's consumer (the identity service
        itself writes those tables directly, `replicate=False`)."""
        from adledger_auth import replica
        from adledger_auth.callers import Authenticator

        if self._authenticator is None:
            self._authenticator = Authenticator(lambda: self.pool, self.clock)
            if replicate:
                self.subscribe(*replica.subscriptions(self.settings.identity_events_topic))
        return self._authenticator

    def http_app(self) -> Any:
        """The service's FastAPI application (also built without a database, for its OpenAPI document)."""
        from adledger_auth.callers import UnauthenticatedError
        from adledger_libs.web import build_app

        authenticator = self._authenticator
        return build_app(
            title=self._http_title, service=self.settings.service_name, description=self._http_description,
            routers=self._routers,
            health_checks={"database": self.check_database, "kafka": self.check_kafka}, rejections=self._rejections,
            authenticate=authenticator.authenticate if authenticator is not None else None,
            unauthenticated=(UnauthenticatedError,), public_paths=self._public_paths,
            max_body_bytes=self.settings.http_max_body_bytes,
            health_details=self.sandbox_status if self.sandbox_clock is not None else None,
        )

    def add_background_job(self, name: str, job: BackgroundJob) -> None:
        self._background.append((name, job))

    def add_periodic_job(
        self, name: str, job: Callable[[], Awaitable[object]], interval_ms: int, *, next_due: NextDue | None = None
    ) -> None:
        """Run `job` now and then every `interval_ms` until the service stops. Deadlines are read
        from the injectable clock inside the job, so tests call the job directly after moving
        the clock instead of waiting for this loop (rule T1).

        On the sandbox clock the job also runs at once whenever the sandbox time moves, and
        `next_due` (when the job's next deadline is, None for none) tells the clock's coordinator
        where to stop on its way; a job without one is assumed due at the next UTC midnight."""
        state = _PeriodicJob(name, next_due)
        self._periodic.append(state)

        async def loop() -> None:
            while True:
                moment = self.clock.now()
                await job()
                state.ran_for = moment
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(state.moved.wait(), interval_ms / 1000)
                state.moved.clear()

        self._background.append((name, loop))

    @property
    def sandbox_clock(self) -> SandboxClock | None:
        return self.clock if isinstance(self.clock, SandboxClock) else None

    async def _follow_sandbox_clock(self, clock: SandboxClock) -> None:
        """Follow the sandbox time: on each move wake the periodic jobs; once every one of them ran for
        the time (and the outbox sent what they wrote), report the time reached and the next due time."""
        reported: datetime | None = None
        #: The database's time once every job had run for the sandbox time: what they wrote is older.
        jobs_done: tuple[datetime, datetime] | None = None
        schema = self.settings.schema
        while True:
            if await clock.refresh(self.pool):
                for state in self._periodic:
                    state.moved.set()
            now = clock.now()
            if reported != now and all(s.ran_for is not None and s.ran_for >= now for s in self._periodic):
                if jobs_done is None or jobs_done[0] != now:
                    jobs_done = (now, await self.pool.fetchval("select clock_timestamp()"))
                # Only the rows the jobs wrote are waited for, not the traffic since (spend keeps coming).
                sent = f"select not exists (select 1 from {schema}.outbox where created_at <= $1)"
                if await self.pool.fetchval(sent, jobs_done[1]):
                    dues = [due for s in self._periodic if s.next_due is not None
                            for due in [await s.next_due()] if due is not None]
                    await clock.report(self.pool, self.settings.service_name, now, min(dues, default=None))
                    reported = now
                    log.info("sandbox_time_reached", now=now.isoformat())
            await asyncio.sleep(clock.poll_interval_s)

    async def sandbox_status(self) -> dict[str, Any]:
        clock = self.sandbox_clock
        if clock is None:
            return {}
        from adledger_libs.sandbox_clock import services_reached

        mine = [r for r in await services_reached(self.pool, clock.schema) if r.service == self.settings.service_name]
        return {"sandbox_clock": {
            "now": clock.now().isoformat(), "reached": mine[0].reached.isoformat() if mine else None,
            "next_due": mine[0].next_due.isoformat() if mine and mine[0].next_due else None,
        }}

    def add_error_handler(self, error_type: type[Exception], handler: ErrorHandler) -> None:
        """Answer an exception raised by a route (a rejected command) with a 4xx and its reason."""
        self._error_handlers[error_type] = handler

    def add_startup_job(self, job: BackgroundJob) -> None:
        """Run once after the database, topics and producer are ready, before anything is served."""
        self._startup_jobs.append(job)

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("the service has not started")
        return self._pool

    @property
    def producer(self) -> AIOKafkaProducer | None:
        """The service's producer once started (None before): the outbox relay's, shared by a
        handler that sends a decision before its commit (the spend consumer's pauses, issue 14)."""
        return self._producer

    @property
    def relay(self) -> OutboxRelay:
        if self._relay is None:
            raise RuntimeError("the service has not started")
        return self._relay

    def add_shared_schema(self, schema: str, components: list[tuple[str, Traversable]]) -> None:
        """Migrate a schema shared with other services (the ledger) too; the runner's advisory
        lock makes two services migrating it at the same time safe."""
        self._shared_schemas.append((schema, components))

    def migration_components(self) -> list[tuple[str, Traversable]]:
        components: list[tuple[str, Traversable]] = [("adledger_libs", LIBRARY_MIGRATIONS)]
        if self._migrations is not None:
            components.append((self.settings.service_name, self._migrations))
        return components

    async def migrate(self) -> list[str]:
        conn = await connect(self.settings.database_url, self.settings.schema, application_name=self._name("migrate"))
        try:
            applied: list[str] = []
            for schema, components in self._shared_schemas:
                applied += await migrate(conn, schema, components)
            return applied + await migrate(conn, self.settings.schema, self.migration_components())
        finally:
            await conn.close()

    async def start(self) -> None:
        settings = self.settings
        settings.check_safe()
        await self.migrate()
        self._pool = await create_pool(
            settings.database_url,
            settings.schema,
            application_name=self._name(),
            min_size=settings.database_pool_min_size,
            max_size=settings.database_pool_max_size,
        )
        kafka = settings.kafka_connection()
        if settings.kafka_create_topics:
            await ensure_topics(kafka, self._topics)
        self._producer = make_producer(kafka, client_id=self._name())
        await self._producer.start()
        self._relay = OutboxRelay(
            self._pool,
            self._producer,
            schema=settings.schema,
            poll_interval_s=settings.outbox_poll_interval_ms / 1000,
            sign=self._record_signer(),
        )
        sandbox = self.sandbox_clock
        if sandbox is not None:
            now = await sandbox.attach(self._pool)
            log.warning("sandbox_clock_on", now=now.isoformat(), schema=sandbox.schema)
        for job in self._startup_jobs:
            await job()
        log.info("service_started", service=settings.service_name, schema=settings.schema)

    async def close(self) -> None:
        if self._producer is not None:
            await _bounded(self._producer.stop(), "kafka_producer_stop")
            self._producer = None
        if self._pool is not None:
            # close() waits for every connection to be given back; one still held is not waited for.
            if not await _bounded(self._pool.close(), "database_pool_close"):
                self._pool.terminate()
            self._pool = None

    async def check_database(self) -> None:
        await self.pool.fetchval("select 1")

    async def check_kafka(self) -> None:
        if self._producer is None:
            raise RuntimeError("producer not started")
        await self._producer.client.fetch_all_metadata()

    async def serve(self, stop: asyncio.Event) -> None:
        """Run every task until `stop` is set or one of them fails."""
        tasks: dict[asyncio.Future[Any], str] = {}

        def spawn(name: str, coroutine: Awaitable[None]) -> None:
            tasks[asyncio.ensure_future(coroutine)] = name

        spawn("outbox_relay", self.relay.run())
        consumer: TransactionalConsumer | None = None
        if self._subscriptions:
            consumer = TransactionalConsumer(
                self.pool,
                bootstrap_servers=self.settings.kafka_connection(),
                group_id=self.settings.consumer_group,
                subscriptions=self._subscriptions,
                relay=self.relay,
                max_batch_records=self.settings.consumer_max_batch_records,
                max_batch_seconds=self.settings.consumer_max_batch_ms / 1000,
                client_id=self._name(),
                check_signature=self._signature_check(),
            )
            await consumer.start()
            spawn("consumer", consumer.run())
        for name, job in self._background:
            spawn(name, job())
        if self.sandbox_clock is not None:
            spawn("sandbox_clock", self._follow_sandbox_clock(self.sandbox_clock))
        if self._routers:
            app = self.http_app()
        else:
            app = build_app(
                service=self.settings.service_name,
                health_checks={"database": self.check_database, "kafka": self.check_kafka},
                routes=self._routes,
                error_handlers=self._error_handlers,
            )
        self.http_server = _Server(
            uvicorn.Config(
                app, host=self.settings.http_host, port=self.settings.http_port, log_config=None, access_log=False, lifespan="off",
                timeout_graceful_shutdown=int(SHUTDOWN_STEP_S),
            )
        )
        spawn("http", self.http_server.serve())
        stopper = asyncio.ensure_future(stop.wait())
        failure: BaseException | None = None
        try:
            done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for finished in done:
                failed = tasks.get(finished) if finished is not stopper else None
                if failed is not None:
                    failure = finished.exception() or RuntimeError(f"task {failed} ended unexpectedly")
                    log.error("task_failed", task=failed, error=repr(failure))
        finally:
            self.http_server.should_exit = True
            for task, name in tasks.items():
                if name != "http":
                    task.cancel()
            await _bounded(asyncio.gather(*tasks, return_exceptions=True), "tasks_end")
            stopper.cancel()
            if consumer is not None:
                await _bounded(consumer.stop(), "kafka_consumer_stop")
        if failure is not None:
            raise failure

    def _record_signer(self) -> Callable[[str, bytes | None, bytes, dict[str, str]], list[tuple[str, bytes]]] | None:
        """The service signs the records other services act on (`Message.SIGNED_BY` names it) as
        they leave its outbox. Its key is made on first start locally; production needs it when the
        service sends such records (`settings.signs_records`), and refuses to start without it."""
        from adledger_auth.signatures import HEADER_SIGNATURE, service_key, signed_types
        from adledger_contracts import ALL_MESSAGES

        settings = self.settings
        principal = settings.service_name
        signers = signed_types(ALL_MESSAGES)
        sent_by_me = {message_type for message_type, allowed in signers.items() if principal in allowed}
        if not sent_by_me:
            return None
        try:
            signer = service_key(settings.secrets_path() / "services", principal, make=settings.local)
        except FileNotFoundError:
            if settings.signs_records:
                raise
            log.warning("record_signing_key_missing", service=principal)
            return None

        def sign(topic: str, key: bytes | None, value: bytes, headers: dict[str, str]) -> list[tuple[str, bytes]]:
            if headers.get(HEADER_EVENT_TYPE) not in sent_by_me:
                return []
            return [(HEADER_SIGNATURE, signer.sign(topic, key, value).encode())]

        return sign

    def _signature_check(self) -> Callable[..., None] | None:
        from adledger_auth.signatures import RecordVerifier, check_signed_message

        if not any(subscription.model.SIGNED_BY for subscription in self._subscriptions):
            return None
        verifier = RecordVerifier(self.settings.secrets_path() / "services")

        def check(message: object, headers: dict[str, str], topic: str, key: bytes | None, value: bytes) -> None:
            check_signed_message(verifier, message, headers, topic, key, value)

        return check

    def _name(self, suffix: str = "") -> str:
        return f"adledger-{self.settings.service_name}" + (f"-{suffix}" if suffix else "")


async def _serve_until_signalled(runtime: ServiceRuntime) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await runtime.start()
    try:
        await runtime.serve(stop)
    finally:
        await runtime.close()
        log.info("service_stopped", service=runtime.settings.service_name)


def run_cli(build: Callable[[], ServiceRuntime], argv: Sequence[str] | None = None) -> None:
    """The console entry point of a service: `serve` (the default) or `migrate`."""
    runtime = build()
    settings = runtime.settings
    parser = argparse.ArgumentParser(prog=f"adledger-{settings.service_name.replace('_', '-')}")
    parser.add_argument("command", nargs="?", default="serve", choices=("serve", "migrate"))
    arguments = parser.parse_args(argv)
    configure_logging(settings.log_level, settings.log_format, service=settings.service_name)
    try:
        if arguments.command == "migrate":
            applied = asyncio.run(runtime.migrate())
            log.info("migrate_done", applied=applied)
        else:
            asyncio.run(_serve_until_signalled(runtime))
    except KeyboardInterrupt:
        pass
    except Exception as error:
        log.error("service_failed", error=repr(error), exc_info=True)
        sys.exit(1)
