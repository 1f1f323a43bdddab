"""The spend consumer's tables (migrations/0001_spend_consumer.sql): one set-based statement per
step of a batch, never one statement per event, so a batch costs the same few round trips
whatever its size."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

import asyncpg
from adledger_contracts.campaigns import AdAccountBudgetCapChanged, CampaignChanged

from adledger_spend_consumer.domain import delivery
from adledger_spend_consumer.domain.budgets import AccountCap, CampaignBudget
from adledger_spend_consumer.domain.delivery import Transition
from adledger_spend_consumer.domain.spending import AccountProfile, ChargeTakes

_PROFILE_COLUMNS = "ad_account_id, business_center_id, currency, draws_on_business_center"


def _profile(row: asyncpg.Record) -> AccountProfile:
    return AccountProfile(row["ad_account_id"], row["business_center_id"], row["currency"], row["draws_on_business_center"])


async def upsert_business_centers(conn: asyncpg.Connection, rows: Sequence[tuple[str, str]]) -> None:
    await conn.execute(
        """insert into business_centers (business_center_id, currency)
           select * from unnest($1::text[], $2::text[]) on conflict (business_center_id) do nothing""",
        [business_center_id for business_center_id, _ in rows],
        [currency for _, currency in rows],
    )


async def upsert_ad_accounts(conn: asyncpg.Connection, profiles: Sequence[AccountProfile]) -> None:
    # An account opened twice (a re-sent event) keeps its first row; ABA only ever switches on.
    await conn.execute(
        f"""insert into ad_accounts ({_PROFILE_COLUMNS})
            select * from unnest($1::text[], $2::text[], $3::text[], $4::boolean[])
            on conflict (ad_account_id) do update
               set draws_on_business_center = ad_accounts.draws_on_business_center or excluded.draws_on_business_center""",
        [profile.ad_account_id for profile in profiles],
        [profile.business_center_id for profile in profiles],
        [profile.currency for profile in profiles],
        [profile.draws_on_business_center for profile in profiles],
    )


async def enable_business_center_draws(conn: asyncpg.Connection, business_center_id: str, ad_account_ids: Sequence[str]) -> None:
    """ABA was enabled: these accounts now draw on their Business Center (W7)."""
    await conn.execute(
        """update ad_accounts set draws_on_business_center = true
           where business_center_id = $1 and ad_account_id = any($2::text[])""",
        business_center_id,
        list(ad_account_ids),
    )


async def account_profiles(conn: asyncpg.Connection, ad_account_ids: Iterable[str]) -> dict[str, AccountProfile]:
    rows = await conn.fetch(
        f"select {_PROFILE_COLUMNS} from ad_accounts where ad_account_id = any($1::text[])", list(ad_account_ids)
    )
    return {row["ad_account_id"]: _profile(row) for row in rows}


async def aba_members(conn: asyncpg.Connection, business_center_ids: Iterable[str]) -> dict[str, AccountProfile]:
    """Every ABA ad account of these Business Centers."""
    rows = await conn.fetch(
        f"""select {_PROFILE_COLUMNS} from ad_accounts
            where business_center_id = any($1::text[]) and draws_on_business_center""",
        list(business_center_ids),
    )
    return {row["ad_account_id"]: _profile(row) for row in rows}


async def charges(conn: asyncpg.Connection, charge_ids: Iterable[str]) -> dict[str, ChargeTakes]:
    rows = await conn.fetch(
        """select charge_id, ad_account_id, amount_micros, account_vouchers_micros, account_cash_micros,
                  center_vouchers_micros, center_cash_micros, center_credit_line_micros, overspend_micros, booking_micros
           from charges where charge_id = any($1::text[])""",
        list(charge_ids),
    )
    return {
        row["charge_id"]: ChargeTakes(
            ad_account_id=row["ad_account_id"],
            amount_micros=row["amount_micros"],
            account_vouchers_micros=row["account_vouchers_micros"],
            account_cash_micros=row["account_cash_micros"],
            center_vouchers_micros=row["center_vouchers_micros"],
            center_cash_micros=row["center_cash_micros"],
            center_credit_line_micros=row["center_credit_line_micros"],
            overspend_micros=row["overspend_micros"],
            booking_micros=row["booking_micros"],
        )
        for row in rows
    }


async def store_charges(conn: asyncpg.Connection, changed: dict[str, ChargeTakes]) -> None:
    if not changed:
        return
    items = list(changed.items())
    await conn.execute(
        """insert into charges (charge_id, ad_account_id, amount_micros, account_vouchers_micros, account_cash_micros,
                                center_vouchers_micros, center_cash_micros, center_credit_line_micros, overspend_micros,
                                booking_micros)
           select * from unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[],
                                $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[])
           on conflict (charge_id) do update set
               amount_micros = excluded.amount_micros,
               account_vouchers_micros = excluded.account_vouchers_micros,
               account_cash_micros = excluded.account_cash_micros,
               center_vouchers_micros = excluded.center_vouchers_micros,
               center_cash_micros = excluded.center_cash_micros,
               center_credit_line_micros = excluded.center_credit_line_micros,
               overspend_micros = excluded.overspend_micros,
               booking_micros = excluded.booking_micros""",
        [charge_id for charge_id, _ in items],
        [charge.ad_account_id for _, charge in items],
        [charge.amount_micros for _, charge in items],
        [charge.account_vouchers_micros for _, charge in items],
        [charge.account_cash_micros for _, charge in items],
        [charge.center_vouchers_micros for _, charge in items],
        [charge.center_cash_micros for _, charge in items],
        [charge.center_credit_line_micros for _, charge in items],
        [charge.overspend_micros for _, charge in items],
        [charge.booking_micros for _, charge in items],
    )


async def lock_ledger_accounts(conn: asyncpg.Connection, ledger_schema: str, account_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
    """Lock these accounts of the shared ledger (sorted by id, as the ledger locks them) and read
    each one's posted balance (credits less debits) and held amount (pending debits)."""
    rows = await conn.fetch(
        f"""select id, credits_posted_micros - debits_posted_micros as posted_micros, debits_pending_micros
            from {ledger_schema}.accounts where id = any($1::text[]) order by id for update""",
        list(account_ids),
    )
    return {row[0]: (row[1], row[2]) for row in rows}


async def lock_states(conn: asyncpg.Connection, keys: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """The causes in force for these keys (ad accounts, `ad_account_id/campaign_id`), their rows locked.

    Every path that decides a pause or a resume locks these rows first (sorted, so they never
    deadlock), then the budget rows, then the ledger's: a pause and a resume of one key serialise,
    and a resume never acts on balances or budgets read before a pause it races with. A key with
    no row has never been paused.

    A key seen for the first time gets its row (serving, no causes) before the lock: with no row
    there would be nothing to lock, and two batches deciding the first pause of one key at once
    (two instances, the ABA accounts of one Business Center on two partitions) would both see it
    serving and both pause it. The insert waits for a concurrent insert of the same key to
    commit, so the second batch then reads the first one's pause.
    """
    ordered = sorted(set(keys))
    await conn.execute(
        """insert into delivery_states (key, ad_account_id, campaign_id, serving, reason, updated_at, causes)
           select k, split_part(k, '/', 1), nullif(substr(k, length(split_part(k, '/', 1)) + 2), ''), true, 'serving', now(), '{}'
           from unnest($1::text[]) as v(k)
           where not exists (select 1 from delivery_states s where s.key = v.k)
           order by k
           on conflict (key) do nothing""",
        ordered,
    )
    rows = await conn.fetch(
        "select key, causes from delivery_states where key = any($1::text[]) order by key for update",
        ordered,
    )
    return {row["key"]: tuple(row["causes"]) for row in rows}


async def delivery_states(
    conn: asyncpg.Connection, keys: Sequence[str]
) -> dict[str, tuple[bool, str, tuple[str, ...]]]:
    """The stored state of these keys, not locked: (serving, reason, causes in force)."""
    rows = await conn.fetch(
        "select key, serving, reason, causes from delivery_states where key = any($1::text[])", list(keys)
    )
    return {row["key"]: (row["serving"], row["reason"], tuple(row["causes"])) for row in rows}


async def lock_paused_for_owners(conn: asyncpg.Connection, owner_ids: Sequence[str]) -> tuple[dict[str, AccountProfile], dict[str, tuple[str, ...]]]:
    """The ad accounts paused for insufficient funds whose funds these owners' balances are part
    of (the account itself, and under ABA every account of a Business Center), their state rows
    locked; and the causes in force for each."""
    rows = await conn.fetch(
        """select a.ad_account_id, a.business_center_id, a.currency, a.draws_on_business_center, s.causes
            from delivery_states s join ad_accounts a on a.ad_account_id = s.ad_account_id
            where s.key = s.ad_account_id and 'insufficient_funds' = any(s.causes)
              and (a.ad_account_id = any($1::text[]) or (a.draws_on_business_center and a.business_center_id = any($1::text[])))
            order by s.key
            for update of s""",
        list(owner_ids),
    )
    return {row["ad_account_id"]: _profile(row) for row in rows}, {row["ad_account_id"]: tuple(row["causes"]) for row in rows}


async def lock_budget_paused(conn: asyncpg.Connection) -> dict[str, tuple[str, str | None, tuple[str, ...]]]:
    """Every key paused for its campaign budget or account cap, locked: (ad account, campaign, causes)."""
    rows = await conn.fetch(
        """select key, ad_account_id, campaign_id, causes from delivery_states
           where causes && array['campaign_budget_reached', 'account_budget_reached']::text[]
           order by key for update"""
    )
    return {row["key"]: (row["ad_account_id"], row["campaign_id"], tuple(row["causes"])) for row in rows}


async def apply_transitions(
    conn: asyncpg.Connection, transitions: Sequence[Transition], causes_after: Mapping[str, tuple[str, ...]], now: datetime
) -> dict[tuple[str, str], int]:
    """Write what `delivery.resolve` decided: each changed key's causes and latest state, a `pauses`
    row per cause that started, and the end of each that ended. Returns the overspend (S2) of
    every ended pause, by (key, cause)."""
    if not transitions:
        return {}
    last: dict[str, Transition] = {}
    for transition in transitions:
        last[transition.change.key] = transition
    keys = sorted(causes_after)
    # A key's causes travel as a JSON array: unnest cannot take an array of arrays of different lengths.
    await conn.execute(
        """insert into delivery_states (key, ad_account_id, campaign_id, serving, reason, updated_at, causes)
           select k, a, c, s, r, $7, array(select jsonb_array_elements_text(x::jsonb))
           from unnest($1::text[], $2::text[], $3::text[], $4::boolean[], $5::text[], $6::text[]) as v(k, a, c, s, r, x)
           on conflict (key) do update
              set serving = excluded.serving, reason = excluded.reason, updated_at = excluded.updated_at,
                  causes = excluded.causes,
                  -- A row lock_states made first guessed these from the key; the decision knows them.
                  ad_account_id = excluded.ad_account_id, campaign_id = excluded.campaign_id""",
        keys,
        [last[key].change.ad_account_id for key in keys],
        [last[key].change.campaign_id for key in keys],
        [not causes_after[key] for key in keys],
        [last[key].state_reason for key in keys],
        [json.dumps(list(causes_after[key])) for key in keys],
        now,
    )
    started = [transition.change for transition in transitions if transition.change.starts]
    if started:
        await conn.execute(
            """insert into pauses (ad_account_id, campaign_id, reason, paused_at, cause_event_id, overspend_micros)
               select a, c, r, $5, e, o from unnest($1::text[], $2::text[], $3::text[], $4::text[], $6::bigint[]) as v(a, c, r, e, o)""",
            [change.ad_account_id for change in started],
            [change.campaign_id for change in started],
            [change.cause for change in started],
            [change.cause_event_id for change in started],
            now,
            [change.overspend_micros or 0 for change in started],
        )
    ended = [transition.change for transition in transitions if not transition.change.starts]
    if not ended:
        return {}
    rows = await conn.fetch(
        """update pauses p set resumed_at = $4
           from unnest($1::text[], $2::text[], $3::text[]) as v(a, c, r)
           where p.ad_account_id = v.a and p.campaign_id is not distinct from v.c and p.reason = v.r and p.resumed_at is null
           returning p.ad_account_id, p.campaign_id, p.reason, p.overspend_micros""",
        [change.ad_account_id for change in ended],
        [change.campaign_id for change in ended],
        [change.cause for change in ended],
        now,
    )
    return {(delivery.state_key(row["ad_account_id"], row["campaign_id"]), row["reason"]): row["overspend_micros"] for row in rows}


async def add_overspend_to_open_pauses(conn: asyncpg.Connection, overspend_micros_by_account: dict[str, int]) -> None:
    if not overspend_micros_by_account:
        return
    await conn.execute(
        """update pauses p set overspend_micros = p.overspend_micros + v.o
           from unnest($1::text[], $2::bigint[]) as v(a, o)
           where p.ad_account_id = v.a and p.campaign_id is null and p.reason = 'insufficient_funds'
             and p.resumed_at is null""",
        list(overspend_micros_by_account),
        list(overspend_micros_by_account.values()),
    )


# ----------------------------------------------------------------------------------------------
# Budgets and caps (S3)
# ----------------------------------------------------------------------------------------------

_CAMPAIGN_COLUMNS = (
    "ad_account_id, campaign_id, business_center_id, funding_mode, budget_kind, budget_micros, booked_micros, "
    "currency, status, pause_cause, version, changed_at"
)


def _campaign(row: Mapping[str, Any], today: date) -> CampaignBudget:
    return CampaignBudget(
        ad_account_id=row["ad_account_id"],
        campaign_id=row["campaign_id"],
        funding_mode=row["funding_mode"],
        budget_kind=row["budget_kind"],
        budget_micros=row["budget_micros"],
        booked_micros=row["booked_micros"],
        spent_micros=row["spent_micros"],
        day_spent_micros=row["day_spent_micros"] if row["spend_day"] == today else 0,
        from_booking_micros=row["from_booking_micros"],
    )


async def budgets(
    conn: asyncpg.Connection, pairs: Iterable[tuple[str, str]], capped_account_ids: Iterable[str], today: date
) -> tuple[dict[tuple[str, str], CampaignBudget], dict[str, AccountCap]]:
    """The known campaigns among `pairs` (ad account, campaign) and the caps of these accounts,
    with their spend counted on `today`, in ONE query; their rows locked (sorted) until the end
    of the transaction, so a snapshot and a spend of one campaign or cap serialise."""
    pair_list = sorted(set(pairs))
    rows = await conn.fetch(
        """with wanted as (select * from unnest($1::text[], $2::text[]) as w(a, c)),
                locked_campaigns as (
                    select c.* from campaigns c join wanted w on c.ad_account_id = w.a and c.campaign_id = w.c
                    order by c.ad_account_id, c.campaign_id for update of c),
                locked_caps as (
                    select k.* from account_caps k where k.ad_account_id = any($3::text[])
                    order by k.ad_account_id for update of k)
           select 'campaign' as row_kind, ad_account_id, campaign_id, funding_mode, budget_kind, budget_micros,
                  booked_micros, spent_micros, spend_day, day_spent_micros, from_booking_micros,
                  null::date as starts_on, null::date as ends_on
           from locked_campaigns
           union all
           select 'cap', k.ad_account_id, null, k.kind, null, k.amount_micros, 0,
                  coalesce((select sum(d.spent_micros) from account_spend_days d
                            where d.ad_account_id = k.ad_account_id and d.day <= $4::date
                              and d.day >= case k.kind when 'daily' then $4::date
                                                       when 'monthly' then date_trunc('month', $4::date)::date
                                                       else coalesce(k.starts_on, $4::date) end), 0)::bigint,
                  null, 0, 0, k.starts_on, k.ends_on
           from locked_caps k""",
        [account_id for account_id, _ in pair_list],
        [campaign_id for _, campaign_id in pair_list],
        sorted(set(capped_account_ids)),
        today,
    )
    campaigns: dict[tuple[str, str], CampaignBudget] = {}
    caps: dict[str, AccountCap] = {}
    for row in rows:
        if row["row_kind"] == "campaign":
            campaigns[(row["ad_account_id"], row["campaign_id"])] = _campaign(row, today)
        else:
            caps[row["ad_account_id"]] = AccountCap(
                ad_account_id=row["ad_account_id"],
                kind=row["funding_mode"],
                amount_micros=row["budget_micros"],
                starts_on=row["starts_on"],
                ends_on=row["ends_on"],
                period_spent_micros=row["spent_micros"],
            )
    return campaigns, caps


async def budget_keys_of_accounts(conn: asyncpg.Connection, ad_account_ids: Sequence[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """The campaigns and caps known for these ad accounts (not locked): (campaign pairs, capped accounts)."""
    rows = await conn.fetch(
        """select ad_account_id, campaign_id from campaigns where ad_account_id = any($1::text[])
           union all
           select ad_account_id, null from account_caps where ad_account_id = any($1::text[])""",
        list(ad_account_ids),
    )
    pairs = [(row["ad_account_id"], row["campaign_id"]) for row in rows if row["campaign_id"] is not None]
    return pairs, [row["ad_account_id"] for row in rows if row["campaign_id"] is None]


async def upsert_campaigns(
    conn: asyncpg.Connection, snapshots: Sequence[CampaignChanged], today: date
) -> dict[tuple[str, str], tuple[CampaignBudget, str, str | None]]:
    """Keep the newest snapshot of each campaign; an older or equal version changes nothing.
    Returns the campaigns that changed: their budget and counters, status and pause cause."""
    if not snapshots:
        return {}
    rows = await conn.fetch(
        f"""insert into campaigns as c ({_CAMPAIGN_COLUMNS})
            select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[],
                                 $8::text[], $9::text[], $10::text[], $11::int[], $12::timestamptz[])
            on conflict (ad_account_id, campaign_id) do update set
                business_center_id = excluded.business_center_id, funding_mode = excluded.funding_mode,
                budget_kind = excluded.budget_kind, budget_micros = excluded.budget_micros,
                booked_micros = excluded.booked_micros, currency = excluded.currency, status = excluded.status,
                pause_cause = excluded.pause_cause, version = excluded.version, changed_at = excluded.changed_at
            where c.version < excluded.version
            returning c.*""",
        [item.ad_account_id for item in snapshots],
        [item.campaign_id for item in snapshots],
        [item.business_center_id for item in snapshots],
        [item.funding_mode for item in snapshots],
        [item.budget_kind for item in snapshots],
        [item.budget_micros for item in snapshots],
        [item.booked_micros for item in snapshots],
        [item.currency for item in snapshots],
        [item.status for item in snapshots],
        [item.pause_cause for item in snapshots],
        [item.version for item in snapshots],
        [item.changed_at for item in snapshots],
    )
    return {
        (row["ad_account_id"], row["campaign_id"]): (_campaign(row, today), row["status"], row["pause_cause"]) for row in rows
    }


async def campaign_statuses(conn: asyncpg.Connection, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], tuple[str, str | None]]:
    pair_list = sorted(set(pairs))
    rows = await conn.fetch(
        """select c.ad_account_id, c.campaign_id, c.status, c.pause_cause
           from campaigns c join unnest($1::text[], $2::text[]) as w(a, c2) on c.ad_account_id = w.a and c.campaign_id = w.c2""",
        [account_id for account_id, _ in pair_list],
        [campaign_id for _, campaign_id in pair_list],
    )
    return {(row["ad_account_id"], row["campaign_id"]): (row["status"], row["pause_cause"]) for row in rows}


async def upsert_caps(conn: asyncpg.Connection, snapshots: Sequence[AdAccountBudgetCapChanged]) -> list[str]:
    """Keep the newest cap of each ad account; returns the accounts whose cap changed."""
    if not snapshots:
        return []
    rows = await conn.fetch(
        """insert into account_caps as k (ad_account_id, kind, amount_micros, starts_on, ends_on, currency, version, changed_at)
           select * from unnest($1::text[], $2::text[], $3::bigint[], $4::date[], $5::date[], $6::text[], $7::int[],
                                $8::timestamptz[])
           on conflict (ad_account_id) do update set
               kind = excluded.kind, amount_micros = excluded.amount_micros, starts_on = excluded.starts_on,
               ends_on = excluded.ends_on, currency = excluded.currency, version = excluded.version,
               changed_at = excluded.changed_at
           where k.version < excluded.version
           returning k.ad_account_id""",
        [item.ad_account_id for item in snapshots],
        [item.kind for item in snapshots],
        [item.amount_micros for item in snapshots],
        [item.starts_on for item in snapshots],
        [item.ends_on for item in snapshots],
        [item.currency for item in snapshots],
        [item.version for item in snapshots],
        [item.changed_at for item in snapshots],
    )
    return [row["ad_account_id"] for row in rows]


async def store_campaign_spend(conn: asyncpg.Connection, campaigns: Mapping[tuple[str, str], CampaignBudget], today: date) -> None:
    """The campaigns' new counters (their rows are locked by `budgets`)."""
    if not campaigns:
        return
    items = list(campaigns.values())
    await conn.execute(
        """update campaigns c set spent_micros = v.s, day_spent_micros = v.d, spend_day = $6, from_booking_micros = v.b
           from unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[]) as v(a, k, s, d, b)
           where c.ad_account_id = v.a and c.campaign_id = v.k""",
        [item.ad_account_id for item in items],
        [item.campaign_id for item in items],
        [item.spent_micros for item in items],
        [item.day_spent_micros for item in items],
        [item.from_booking_micros for item in items],
        today,
    )


async def add_account_spend(conn: asyncpg.Connection, spend_micros_by_account: Mapping[str, int], today: date) -> None:
    """Add the batch's net spend to each ad account's day (for the caps' periods, W10)."""
    items = [(account_id, micros) for account_id, micros in sorted(spend_micros_by_account.items()) if micros]
    if not items:
        return
    await conn.execute(
        """insert into account_spend_days as d (ad_account_id, day, spent_micros)
           select a, $3, s from unnest($1::text[], $2::bigint[]) as v(a, s)
           on conflict (ad_account_id, day) do update set spent_micros = d.spent_micros + excluded.spent_micros""",
        [account_id for account_id, _ in items],
        [micros for _, micros in items],
        today,
    )


async def record_announced_pauses(
    conn: asyncpg.Connection, rows: Sequence[tuple[str, int, str, str, str]], now: datetime
) -> None:
    """Write down (topic, partition, key, cause, event id) of pauses about to be sent early, in
    the caller's own committed statement (issue 14). The same pause announced again keeps its row."""
    await conn.execute(
        """insert into announced_pauses (topic, partition, key, cause, event_id, announced_at)
           select v.topic, v.partition, v.key, v.cause, v.event_id, $6
           from unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[]) as v(topic, partition, key, cause, event_id)
           on conflict (topic, partition, key, cause) do update set event_id = excluded.event_id""",
        [row[0] for row in rows], [row[1] for row in rows], [row[2] for row in rows],
        [row[3] for row in rows], [row[4] for row in rows], now,
    )


async def take_announced_pauses(
    conn: asyncpg.Connection, partitions: Sequence[tuple[str, int]]
) -> list[tuple[str, str]]:
    """Delete the announced pauses of these partitions in the caller's transaction and return
    their (key, cause), sorted: the transaction that commits them owns their outcome."""
    rows = await conn.fetch(
        """delete from announced_pauses a using unnest($1::text[], $2::int[]) as v(topic, partition)
           where a.topic = v.topic and a.partition = v.partition returning a.key, a.cause""",
        [topic for topic, _ in partitions], [partition for _, partition in partitions],
    )
    return sorted({(row["key"], row["cause"]) for row in rows})
