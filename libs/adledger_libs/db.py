"""PostgreSQL through asyncpg: a pool bound to one service's schema, and versioned migrations.

Each service keeps its tables in its own schema of the one database. Migrations are plain SQL
files `NNNN_name.sql`, applied in order, each in its own transaction, recorded with a checksum
in `<schema>.schema_migrations`; an applied file that changed afterwards stops the service
(it must be a new migration instead). The library's own tables (outbox, consumer positions,
processed events) are a migration component of their own, applied before the service's.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

import asyncpg

from adledger_libs.logs import get_logger

log = get_logger(__name__)

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_MIGRATION_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
LIBRARY_MIGRATIONS = files("adledger_libs") / "migrations"


def checked_schema(name: str) -> str:
    if not _SCHEMA_NAME.match(name):
        raise ValueError(f"invalid schema name {name!r}")
    return name


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(
    database_url: str, schema: str, *, application_name: str, min_size: int = 1, max_size: int = 10
) -> asyncpg.Pool:
    """A pool whose connections see the service's schema first."""
    pool = await asyncpg.create_pool(
        database_url,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        server_settings={"search_path": f"{checked_schema(schema)},public", "application_name": application_name},
    )
    assert pool is not None
    return pool


async def connect(database_url: str, schema: str, *, application_name: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(
        database_url,
        server_settings={"search_path": f"{checked_schema(schema)},public", "application_name": application_name},
    )
    await _init_connection(conn)
    return conn


@dataclass(frozen=True)
class Migration:
    component: str
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(component: str, directory: Traversable) -> list[Migration]:
    found: list[Migration] = []
    if not directory.is_dir():
        return found
    for entry in directory.iterdir():
        match = _MIGRATION_FILE.match(entry.name)
        if match:
            found.append(Migration(component, int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda migration: migration.version)
    versions = [migration.version for migration in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"{component}: two migrations share a version: {versions}")
    return found


class MigrationChangedError(RuntimeError):
    """An applied migration's file was edited; write a new migration instead."""


async def migrate(conn: asyncpg.Connection, schema: str, components: list[tuple[str, Traversable]]) -> list[str]:
    """Apply what is missing, under an advisory lock so two instances starting together don't race."""
    schema = checked_schema(schema)
    applied_now: list[str] = []
    await conn.execute("select pg_advisory_lock(hashtext($1))", f"adledger.migrate.{schema}")
    try:
        await conn.execute(f"create schema if not exists {schema}")
        await conn.execute(
            f"""create table if not exists {schema}.schema_migrations (
                    component text not null,
                    version integer not null,
                    name text not null,
                    checksum text not null,
                    applied_at timestamptz not null default now(),
                    primary key (component, version))"""
        )
        rows = await conn.fetch(f"select component, version, name, checksum from {schema}.schema_migrations")
        done: dict[tuple[str, int], Any] = {(row["component"], row["version"]): row for row in rows}
        for component, directory in components:
            for migration in load_migrations(component, directory):
                previous = done.get((component, migration.version))
                if previous is not None:
                    if previous["checksum"] != migration.checksum:
                        raise MigrationChangedError(
                            f"{schema}: migration {component}/{migration.name} changed after it was applied"
                        )
                    continue
                async with conn.transaction():
                    await conn.execute(f"set local search_path to {schema}, public")
                    await conn.execute(migration.sql)
                    await conn.execute(
                        f"insert into {schema}.schema_migrations (component, version, name, checksum)"
                        " values ($1, $2, $3, $4)",
                        component,
                        migration.version,
                        migration.name,
                        migration.checksum,
                    )
                applied_now.append(f"{component}/{migration.name}")
    finally:
        await conn.execute("select pg_advisory_unlock(hashtext($1))", f"adledger.migrate.{schema}")
    if applied_now:
        log.info("migrations_applied", schema=schema, migrations=applied_now)
    return applied_now
