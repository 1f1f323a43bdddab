from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from adledger_libs.db import LIBRARY_MIGRATIONS, MigrationChangedError, migrate

from .conftest import Stack, unique

pytestmark = pytest.mark.integration


async def test_migrations_apply_in_order_once_and_an_edited_one_stops_the_start(stack: Stack, tmp_path: Path) -> None:
    (tmp_path / "0001_first.sql").write_text("create table first (id int);")
    (tmp_path / "0002_second.sql").write_text("alter table first add column name text;")
    schema = unique("t_migrate")
    conn = await asyncpg.connect(stack.database_url)
    try:
        components = [("adledger_libs", LIBRARY_MIGRATIONS), ("svc", tmp_path)]
        assert await migrate(conn, schema, components) == [
            "adledger_libs/0001_messaging.sql",
            "adledger_libs/0002_idempotency.sql",
            "adledger_libs/0003_identity_replica.sql",
            "svc/0001_first.sql",
            "svc/0002_second.sql",
        ]
        assert await migrate(conn, schema, components) == []
        assert await conn.fetchval(f"select count(*) from {schema}.first") == 0
        (tmp_path / "0002_second.sql").write_text("alter table first add column other text;")
        with pytest.raises(MigrationChangedError, match="0002_second.sql"):
            await migrate(conn, schema, components)
    finally:
        await conn.execute(f"drop schema if exists {schema} cascade")
        await conn.close()
