"""A service in-process on the real stack, for the tests: started, serving HTTP on a free port,
healthy, and stopped and dropped afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import asyncpg
import httpx

from adledger_libs.runtime import ServiceRuntime

from .conftest import Stack
from .kafka_io import start_at_end
from .waits import until


@asynccontextmanager
async def running(
    runtime: ServiceRuntime, stack: Stack, *, drop_schemas: Sequence[str] = (), start_at_end_of: Sequence[str] = (),
    keep_schema: bool = False,
) -> AsyncIterator[httpx.AsyncClient]:
    """`start_at_end_of`: shared topics the service must read only from now on (other runs' records).
    `keep_schema`: leave the service's schema for a restart of the same service (the test drops it)."""
    settings = runtime.settings
    await runtime.start()
    if start_at_end_of:
        await start_at_end(stack.kafka_bootstrap_servers, stack.database_url, settings.schema, settings.consumer_group,
                           list(start_at_end_of))
    stop = asyncio.Event()
    serving = asyncio.ensure_future(runtime.serve(stop))
    client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.http_port}", timeout=10.0)
    try:
        async def healthy() -> bool:
            if serving.done():
                serving.result()
            try:
                return (await client.get("/health")).status_code == 200
            except httpx.TransportError:
                return False

        await until(healthy, f"{settings.service_name} healthy", timeout_s=60)
        yield client
    finally:
        stop.set()
        await asyncio.gather(serving, return_exceptions=True)
        await client.aclose()
        await runtime.close()
        conn = await asyncpg.connect(stack.database_url)
        try:
            for schema in ((() if keep_schema else (settings.schema,)) + tuple(drop_schemas)):
                await conn.execute(f"drop schema if exists {schema} cascade")
        finally:
            await conn.close()
