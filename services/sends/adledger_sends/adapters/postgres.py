"""The sends service's tables (schema `sends`) and the identity replica's roles; implements
`ports.store.SendsWork` over the library's outbox unit of work."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg
from adledger_auth import replica
from adledger_libs.events import Message
from adledger_libs.outbox import OutboxRelay, UnitOfWork, unit_of_work

from adledger_sends.domain.sends import Send, SendCampaign


class PostgresSendsStore:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def finance_roles_set_up(self, business_center_id: str) -> bool:
        return await replica.finance_roles_set_up(self._conn, business_center_id)

    async def member_roles(self, business_center_id: str) -> dict[str, Any]:
        return dict(await replica.members_of(self._conn, business_center_id))

    # Funding sources, defaults and teams (U1) ---------------------------------------------------

    async def add_funding_source(self, source_id: str, business_center_id: str, kind: str, currency: str,
                                 now: datetime) -> bool:
        return bool(await self._conn.fetchval(
            "insert into funding_sources (id, business_center_id, kind, currency, attached_at)"
            " values ($1, $2, $3, $4, $5) on conflict do nothing returning true",
            source_id, business_center_id, kind, currency, now,
        ))

    async def funding_source(self, source_id: str) -> asyncpg.Record | None:
        return await self._conn.fetchrow("select * from funding_sources where id = $1", source_id)

    async def set_default(self, business_center_id: str, source_id: str) -> None:
        await self._conn.execute(
            "insert into default_funding_sources (business_center_id, funding_source_id) values ($1, $2)"
            " on conflict (business_center_id) do update set funding_source_id = $2",
            business_center_id, source_id,
        )

    async def default_source(self, business_center_id: str) -> str | None:
        return await self._conn.fetchval(
            "select funding_source_id from default_funding_sources where business_center_id = $1", business_center_id
        )

    async def add_team(self, team_id: str, business_center_id: str, name: str, source_id: str, now: datetime) -> bool:
        return bool(await self._conn.fetchval(
            "insert into teams (id, business_center_id, name, funding_source_id, created_at)"
            " values ($1, $2, $3, $4, $5) on conflict do nothing returning true",
            team_id, business_center_id, name, source_id, now,
        ))

    async def team(self, team_id: str) -> asyncpg.Record | None:
        return await self._conn.fetchrow("select * from teams where id = $1", team_id)

    async def teams(self, business_center_id: str, limit: int) -> list[asyncpg.Record]:
        return list(await self._conn.fetch(
            "select * from teams where business_center_id = $1 order by id limit $2", business_center_id, limit
        ))

    # User balances (U1, U6) ------------------------------------------------------------------------

    async def user_balance_ids(self, business_center_id: str, limit: int) -> list[str]:
        rows = await self._conn.fetch(
            "select user_id from user_balances where business_center_id = $1 order by user_id limit $2",
            business_center_id, limit,
        )
        return [row["user_id"] for row in rows]

    async def user_balance(self, business_center_id: str, user_id: str, *, for_update: bool = False
                           ) -> asyncpg.Record | None:
        return await self._conn.fetchrow(
            "select * from user_balances where business_center_id = $1 and user_id = $2"
            + (" for update" if for_update else ""),
            business_center_id, user_id,
        )

    async def save_user_balance(self, business_center_id: str, user_id: str, *, team_id: str | None, currency: str,
                                budget_micros: int, mode: str, schedule: str, next_period_start: datetime,
                                now: datetime) -> None:
        await self._conn.execute(
            """insert into user_balances (business_center_id, user_id, team_id, currency, budget_micros, mode,
                   schedule, next_period_start, created_at)
               values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
               on conflict (business_center_id, user_id) do update set team_id = $3, budget_micros = $5, mode = $6,
                   schedule = $7, next_period_start = $8""",
            business_center_id, user_id, team_id, currency, budget_micros, mode, schedule, next_period_start, now,
        )

    async def due_balances(self, now: datetime, limit: int = 100) -> list[tuple[str, str]]:
        rows = await self._conn.fetch(
            "select business_center_id, user_id from user_balances where next_period_start <= $1"
            " order by next_period_start limit $2",
            now, limit,
        )
        return [(row["business_center_id"], row["user_id"]) for row in rows]

    async def set_next_period(self, business_center_id: str, user_id: str, start: datetime) -> None:
        await self._conn.execute(
            "update user_balances set next_period_start = $3 where business_center_id = $1 and user_id = $2",
            business_center_id, user_id, start,
        )

    async def add_funding(self, business_center_id: str, user_id: str, period: str, reason: str, amount: int,
                          source_id: str, charge: str | None, now: datetime) -> bool:
        return bool(await self._conn.fetchval(
            """insert into balance_fundings (business_center_id, user_id, period, reason, amount_micros,
                   funding_source_id, charge_id, funded_at)
               values ($1, $2, $3, $4, $5, $6, $7, $8) on conflict do nothing returning true""",
            business_center_id, user_id, period, reason, amount, source_id, charge, now,
        ))

    async def fundings(self, business_center_id: str, user_id: str) -> list[asyncpg.Record]:
        return list(await self._conn.fetch(
            "select * from balance_fundings where business_center_id = $1 and user_id = $2 order by funded_at, period",
            business_center_id, user_id,
        ))

    # Campaigns and sends (U2-U5) --------------------------------------------------------------------

    async def add_campaign(self, campaign: SendCampaign, now: datetime) -> bool:
        return bool(await self._conn.fetchval(
            """insert into send_campaigns (id, business_center_id, name, charge_to, funding_source_id,
                   add_funds_allowed, require_approval, created_at)
               values ($1, $2, $3, $4, $5, $6, $7, $8) on conflict do nothing returning true""",
            campaign.id, campaign.business_center_id, campaign.name, campaign.charge_to, campaign.funding_source_id,
            campaign.add_funds_allowed, campaign.require_approval, now,
        ))

    async def campaign(self, campaign_id: str) -> SendCampaign | None:
        row = await self._conn.fetchrow("select * from send_campaigns where id = $1", campaign_id)
        if row is None:
            return None
        return SendCampaign(row["id"], row["business_center_id"], row["name"], row["charge_to"],
                            row["funding_source_id"], row["add_funds_allowed"], row["require_approval"])

    async def save_send(self, send: Send) -> None:
        await self._conn.execute(
            """insert into sends (id, business_center_id, campaign_id, sender_user_id, via, item_kind, description,
                   charged_to, funding_source_id, add_funds, price_micros, charged_micros, final_cost_micros, currency,
                   state, version, created_at, updated_at)
               values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
               on conflict (id) do update set charged_micros = $12, final_cost_micros = $13, state = $15,
                   version = $16, updated_at = $18""",
            send.id, send.business_center_id, send.campaign_id, send.sender_user_id, send.via, send.item_kind,
            send.description, send.charged_to, send.funding_source_id, send.add_funds, send.price_micros,
            send.charged_micros, send.final_cost_micros, send.currency, send.state, send.version, send.created_at,
            send.updated_at,
        )

    async def send(self, send_id: str, *, for_update: bool = False) -> Send | None:
        row = await self._conn.fetchrow(
            "select * from sends where id = $1" + (" for update" if for_update else ""), send_id
        )
        if row is None:
            return None
        return Send(**{name: row[name] for name in Send.__dataclass_fields__})

    async def sends_of(self, business_center_id: str, state: str | None, limit: int) -> list[Send]:
        rows = await self._conn.fetch(
            "select * from sends where business_center_id = $1 and ($2::text is null or state = $2)"
            " order by created_at desc, id limit $3",
            business_center_id, state, limit,
        )
        return [Send(**{name: row[name] for name in Send.__dataclass_fields__}) for row in rows]

    # Charges asked of the invoicing service ------------------------------------------------------------

    async def add_charge(self, charge: str, source_id: str, direction: str, amount: int, send_id: str | None,
                         now: datetime) -> bool:
        return bool(await self._conn.fetchval(
            """insert into charges (charge_id, funding_source_id, direction, amount_micros, send_id, requested_at)
               values ($1, $2, $3, $4, $5, $6) on conflict do nothing returning true""",
            charge, source_id, direction, amount, send_id, now,
        ))

    async def unconfirmed_charges(self, source_id: str) -> dict[str, int]:
        rows = await self._conn.fetch(
            "select charge_id, amount_micros from charges where funding_source_id = $1 and not confirmed"
            " and direction = 'charge'",
            source_id,
        )
        return {row["charge_id"]: row["amount_micros"] for row in rows}

    async def confirm_charges(self, charge_ids: list[str]) -> None:
        await self._conn.execute("update charges set confirmed = true where charge_id = any($1::text[])", charge_ids)

    async def lock_source(self, source_id: str) -> None:
        await self._conn.execute("select 1 from funding_sources where id = $1 for update", source_id)


class PostgresSendsWork:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
        self._store = PostgresSendsStore(uow.conn)

    @property
    def store(self) -> PostgresSendsStore:
        return self._store

    @property
    def ledger_session(self) -> asyncpg.Connection:
        return self._uow.conn

    def publish(self, message: Message, *, topic: str, key: str | None) -> object:
        return self._uow.publish(message, topic=topic, key=key)


def transactions(pool: Callable[[], asyncpg.Pool], relay: Callable[[], OutboxRelay | None]
                 ) -> Callable[[], Any]:
    @asynccontextmanager
    async def begin() -> AsyncIterator[PostgresSendsWork]:
        async with unit_of_work(pool(), relay()) as uow:
            yield PostgresSendsWork(uow)

    return begin
