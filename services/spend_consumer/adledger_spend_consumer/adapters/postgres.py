"""The spend consumer's tables (migrations/0001_spend_consumer.sql): one set-based statement per
step of a batch, never one statement per event, so a batch costs the same few round trips
whatever its size."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import asyncpg

from adledger_spend_consumer.domain.spending import AccountProfile, ChargeTakes, PauseDecision

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
                  center_vouchers_micros, center_cash_micros, center_credit_line_micros, overspend_micros
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
        )
        for row in rows
    }


async def store_charges(conn: asyncpg.Connection, changed: dict[str, ChargeTakes]) -> None:
    if not changed:
        return
    items = list(changed.items())
    await conn.execute(
        """insert into charges (charge_id, ad_account_id, amount_micros, account_vouchers_micros, account_cash_micros,
                                center_vouchers_micros, center_cash_micros, center_credit_line_micros, overspend_micros)
           select * from unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[],
                                $7::bigint[], $8::bigint[], $9::bigint[])
           on conflict (charge_id) do update set
               amount_micros = excluded.amount_micros,
               account_vouchers_micros = excluded.account_vouchers_micros,
               account_cash_micros = excluded.account_cash_micros,
               center_vouchers_micros = excluded.center_vouchers_micros,
               center_cash_micros = excluded.center_cash_micros,
               center_credit_line_micros = excluded.center_credit_line_micros,
               overspend_micros = excluded.overspend_micros""",
        [charge_id for charge_id, _ in items],
        [charge.ad_account_id for _, charge in items],
        [charge.amount_micros for _, charge in items],
        [charge.account_vouchers_micros for _, charge in items],
        [charge.account_cash_micros for _, charge in items],
        [charge.center_vouchers_micros for _, charge in items],
        [charge.center_cash_micros for _, charge in items],
        [charge.center_credit_line_micros for _, charge in items],
        [charge.overspend_micros for _, charge in items],
    )


async def lock_paused_accounts(conn: asyncpg.Connection, ad_account_ids: Iterable[str]) -> set[str]:
    """The ad accounts among these whose delivery is paused now, their state rows locked.

    The spend path and the resume path both lock these rows (sorted, so they never deadlock) before
    reading balances, so a resume never acts on a balance read before a pause it races with.
    """
    rows = await conn.fetch(
        """select ad_account_id, serving from delivery_states
           where key = any($1::text[]) order by key for update""",
        sorted(set(ad_account_ids)),
    )
    return {row["ad_account_id"] for row in rows if not row["serving"]}


async def lock_paused_for_owners(conn: asyncpg.Connection, owner_ids: Sequence[str]) -> dict[str, AccountProfile]:
    """The paused ad accounts whose funds these owners' balances are part of, their state rows
    locked: the account itself, and under ABA every account of a Business Center."""
    rows = await conn.fetch(
        """select a.ad_account_id, a.business_center_id, a.currency, a.draws_on_business_center
            from delivery_states s join ad_accounts a on a.ad_account_id = s.ad_account_id
            where s.key = s.ad_account_id and not s.serving and s.reason = 'insufficient_funds'
              and (a.ad_account_id = any($1::text[]) or (a.draws_on_business_center and a.business_center_id = any($1::text[])))
            order by s.key
            for update of s""",
        list(owner_ids),
    )
    return {row["ad_account_id"]: _profile(row) for row in rows}


async def record_pauses(conn: asyncpg.Connection, pauses: Sequence[PauseDecision], reason: str, now: datetime) -> None:
    if not pauses:
        return
    account_ids = [pause.ad_account_id for pause in pauses]
    await conn.execute(
        """insert into pauses (ad_account_id, reason, paused_at, cause_event_id, overspend_micros)
           select a, $3, $4, c, o from unnest($1::text[], $2::text[], $5::bigint[]) as v(a, c, o)""",
        account_ids,
        [pause.cause_event_id for pause in pauses],
        reason,
        now,
        [pause.overspend_micros for pause in pauses],
    )
    await set_states(conn, account_ids, serving=False, reason=reason, now=now)


async def add_overspend_to_open_pauses(conn: asyncpg.Connection, overspend_micros_by_account: dict[str, int]) -> None:
    if not overspend_micros_by_account:
        return
    await conn.execute(
        """update pauses p set overspend_micros = p.overspend_micros + v.o
           from unnest($1::text[], $2::bigint[]) as v(a, o)
           where p.ad_account_id = v.a and p.resumed_at is null""",
        list(overspend_micros_by_account),
        list(overspend_micros_by_account.values()),
    )


async def end_pauses(conn: asyncpg.Connection, ad_account_ids: Sequence[str], reason: str, now: datetime) -> dict[str, int]:
    """Close the open pauses of these accounts; returns the overspend each accrued (S2)."""
    rows = await conn.fetch(
        """update pauses set resumed_at = $2
           where ad_account_id = any($1::text[]) and resumed_at is null
           returning ad_account_id, overspend_micros""",
        list(ad_account_ids),
        now,
    )
    await set_states(conn, ad_account_ids, serving=True, reason=reason, now=now)
    return {row["ad_account_id"]: row["overspend_micros"] for row in rows}


async def set_states(conn: asyncpg.Connection, ad_account_ids: Sequence[str], *, serving: bool, reason: str, now: datetime) -> None:
    """The serving state of whole ad accounts (key = the ad account's id, no campaign)."""
    await conn.execute(
        """insert into delivery_states (key, ad_account_id, campaign_id, serving, reason, updated_at)
           select a, a, null, $2, $3, $4 from unnest($1::text[]) as v(a)
           on conflict (key) do update
              set serving = excluded.serving, reason = excluded.reason, updated_at = excluded.updated_at""",
        list(ad_account_ids),
        serving,
        reason,
        now,
    )
