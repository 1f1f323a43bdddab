"""The session's fuzzing worlds: one per service (`worlds.KITS`), started when the first test
that names it runs and stopped before the next service's (pytest groups the tests by world)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from ..conftest import Stack, TopicFactory
from .worlds import KITS, World, delete_world_groups


@pytest_asyncio.fixture(scope="session")
async def world(request: pytest.FixtureRequest, stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    kit = KITS[request.param]
    async with kit.world(stack, TopicFactory(stack.kafka_bootstrap_servers), tmp_path_factory.mktemp(kit.name)) as started:
        yield started
    await delete_world_groups(stack, started)
