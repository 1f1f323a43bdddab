"""The finance console used like a person uses it: a real headless Chromium on the console, which
runs on the real platform (identity, wallet, spend consumer, invoicing with its local provider,
campaign) over the real Kafka and PostgreSQL. Each journey saves its screenshots under the test's
output dir; the overview's is also written where `make screenshot` asks (docs/console-overview.png)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from .browser import PHONE, Browser
from ..conftest import unique
from ..identity_world import PLATFORM
from .conftest import USD, ConsoleWorld, overview_screenshot_target

pytestmark = [pytest.mark.integration]
TOP_UP_FORM = 'form[aria-label="Top up"]'


async def sign_in(browser: Browser, user_id: str, password: str) -> None:
    await browser.sign_out_everyone()
    await browser.open("/sign-in")
    await browser.fill("User id", user_id)
    await browser.fill("Password", password)
    await browser.press("Sign in")


async def no_console_errors(browser: Browser) -> None:
    errors = await browser.errors()
    assert errors == [], f"the browser console has errors: {errors}"


async def test_i1_i2_w6_w10_sign_in_top_up_pay_watch_the_balance_change_allocate_and_cap(
    console: ConsoleWorld, browser: Browser
) -> None:
    from .conftest import PASSWORD

    fiona = await console.person("Fiona Admin")
    business_center = await console.business_center(fiona, name="Acme Media")
    frank = await console.person("Frank Finance")
    await console.grant(business_center, frank, "finance_manager")
    admin_token = await console.sign_in(fiona)
    account = await console.ad_account(business_center, admin_token)

    # Sign in: one sign-in of the platform; a person with one Business Center lands on its overview.
    await sign_in(browser, frank, PASSWORD)
    await browser.until_text("h1", "Acme Media")
    assert "Finance Manager" in await browser.text(".meta")
    assert "off" in await browser.text('[data-figure="aba"]')
    assert account in await browser.text("#ad-accounts")
    await browser.screenshot("1-signed-in")

    # I1: a top-up is an open invoice; its amount is shown apart as pending, not as money.
    await browser.fill("Amount (USD)", "250", within=TOP_UP_FORM)
    await browser.press("Request top-up")
    await browser.until_text("#outcome-top-up", "is open")
    await browser.until_text('[data-figure="pending"]', "USD 250.00")
    assert "USD 0.00" in await browser.text('[data-figure="real"]')

    # The invoices page lists it as open; the local provider's "pay" button pays it.
    await browser.open(f"/bc/{business_center}/invoices")
    assert "open" in await browser.text("table")
    number = (await browser.text("tbody tr td a")).strip()
    await browser.press(f"Pay {number} with the local provider")
    await browser.until_text("#outcome-pay", "paid")
    await browser.screenshot("2-paid")
    await console.until_balance(business_center, 250 * USD)
    await browser.open(f"/bc/{business_center}/invoices")
    assert "paid" in await browser.text("tbody")
    # The invoice document, as invoicing renders it.
    await browser.press(number)
    await browser.until_text("h1", "paid")
    assert await browser.run(
        lambda d: d.find_element("css selector", "iframe[title^='Invoice document']").is_displayed()
    )

    # I2: top up to a target of 400: 150 is invoiced; once the provider pays it, the overview
    # shows the new balance by itself (no reload).
    await browser.open(f"/bc/{business_center}")
    await browser.until_text('[data-figure="real"]', "USD 250.00")
    await browser.mark_page()
    await browser.tick("up to a target balance", within=TOP_UP_FORM)
    await browser.fill("Amount (USD)", "400", within=TOP_UP_FORM)
    await browser.press("Request top-up")
    await browser.until_text("#outcome-top-up", "USD 150.00")
    invoices = await console.platform.billing.invoices(business_center, status="open")
    [target] = [item for item in invoices if item["amount_micros"] == 150 * USD]
    assert await console.platform.pay(target["id"]) == ["paid"]
    await browser.until_text('[data-figure="real"]', "USD 400.00")
    await browser.until_text('[data-figure="pending"]', "USD 0.00")
    assert await browser.unreloaded(), "the balance changed on the page, without a reload"

    # Vouchers and cash to an ad account (W6) and a cap (W10) from the page; the accounts table follows.
    allocate = 'form[aria-label="Allocate"]'
    await browser.choose("What", "cash", within=allocate)
    await browser.fill("Amount (USD)", "40", within=allocate)
    await browser.press("Allocate")
    await browser.until_text("#outcome-allocate", "Moved USD 40.00 of cash")
    cap = 'form[aria-label="Change a cap"]'
    await browser.choose("Kind", "daily", within=cap)
    await browser.fill("Amount (USD)", "25", within=cap)
    await browser.press("Change cap")
    await browser.until_text("#outcome-cap", "daily")
    await browser.until_text(f'tr[data-ad-account="{account}"]', "daily 25.00")
    await browser.until_text(f'tr[data-ad-account="{account}"]', "9 of 10 changes left today")
    await browser.until_text('[data-figure="real"]', "USD 360.00")
    # W6: vouchers the platform granted, moved by hand to the ad account.
    billing = console.platform.billing
    granted = await billing.call(
        billing.wallet,
        "POST",
        f"/v1/business-centers/{business_center}/vouchers",
        PLATFORM,
        {"amount_micros": 20 * USD},
    )
    assert granted.status_code == 200, granted.text
    await browser.until_text('[data-figure="vouchers"]', "USD 20.00")
    await browser.choose("What", "vouchers", within=allocate)
    await browser.fill("Amount (USD)", "15", within=allocate)
    await browser.press("Allocate")
    await browser.until_text("#outcome-allocate", "Moved USD 15.00 of vouchers")
    await browser.until_text('[data-figure="vouchers"]', "USD 5.00")
    await browser.screenshot("3-overview")
    await no_console_errors(browser)

    # At a phone's width the page fits: nothing wider than the screen.
    await browser.size(*PHONE)
    try:
        await browser.open(f"/bc/{business_center}")
        await browser.until_text("h1", "Acme Media")
        width = await browser.run(lambda d: d.execute_script("return document.documentElement.scrollWidth;"))
        viewport = await browser.run(lambda d: d.execute_script("return window.innerWidth;"))
        assert width <= viewport, f"the page is {width}px wide on a {viewport}px screen"
        await browser.screenshot("4-phone")
    finally:
        await browser.size(1280, 1000)
    await no_console_errors(browser)


async def test_s2_w8_an_account_spent_to_zero_shows_paused_without_a_reload(
    console: ConsoleWorld, browser: Browser
) -> None:
    from .conftest import PASSWORD

    platform = console.platform
    fiona = await console.person("Fiona Admin")
    business_center = await console.business_center(fiona, name="Spendy Co")
    admin_token = await console.sign_in(fiona)
    account = await console.ad_account(business_center, admin_token)
    await platform.billing.subscribe(account)
    await console.paid_top_up(admin_token, account, 5 * USD)
    await console.until_balance(account, 5 * USD)
    await platform.operate(business_center, account)
    campaigns = platform.campaigns
    campaign_id = await campaigns.create(100 * USD, platform.clock.now() + timedelta(days=10), funding_mode="drawdown")
    assert (
        await campaigns.command("POST", f"/v1/campaigns/{campaign_id}/activate", campaigns.token)
    ).status_code == 200
    await campaigns.campaign_until(campaign_id, status="active")
    await platform.spend_consumer_knows(
        account, campaign_id, lambda row: row["status"] == "active", "the active campaign"
    )

    await sign_in(browser, fiona, PASSWORD)
    await browser.until_text("h1", "Spendy Co")
    row = f'tr[data-ad-account="{account}"]'
    await browser.until_text(row, "Serving")
    await browser.mark_page()

    # Spend on ads.spend.v1 (the world's own) past the balance: the spend consumer pauses the
    # account (S2: the overspend is owed), and the page shows it by itself.
    await platform.send(platform.spend(account, campaign_id, 2 * USD), platform.spend(account, campaign_id, 4 * USD))

    async def paused() -> bool:
        state = console.states.of(account)
        return state is not None and not state.serving

    from ..waits import until

    await until(paused, "the pause on delivery.state.v1, read by the console", timeout_s=30)
    took = await browser.until_text(row, "Paused", timeout_s=10)
    assert took <= 1.5, f"the pause took {took:.2f}s to appear after the console read it"
    assert "insufficient funds" in await browser.text(row)
    assert await browser.unreloaded(), "shown without a reload"
    await console.until_balance(account, -1 * USD)
    await browser.screenshot("paused")
    await no_console_errors(browser)


async def test_w9_an_analyst_is_refused_in_words_and_another_centers_user_sees_nothing(
    console: ConsoleWorld,
    browser: Browser,
) -> None:
    from .conftest import PASSWORD

    fiona = await console.person("Fiona Admin")
    business_center = await console.business_center(fiona, name="Readonly Ltd")
    ann = await console.person("Ann Analyst")
    await console.grant(business_center, ann, "analyst")
    oscar = await console.person("Oscar Other")
    other = await console.business_center(oscar, name="Other Corp")

    # The analyst sees the overview but the platform refuses the top-up: its reason, in words.
    await sign_in(browser, ann, PASSWORD)
    await browser.until_text("h1", "Readonly Ltd")
    assert "Analyst" in await browser.text(".meta")
    await browser.fill("Amount (USD)", "10", within=TOP_UP_FORM)
    await browser.press("Request top-up")
    refusal = (
        await browser.text("#outcome-top-up") if await browser.until_text("#outcome-top-up", "Refused") >= 0 else ""
    )
    assert "permission_denied" in refusal and "analyst" in refusal.lower(), refusal
    assert await console.platform.billing.invoices(business_center) == [], "nothing was invoiced"
    await browser.screenshot("analyst-refused")
    await no_console_errors(browser)

    # A user of another Business Center sees nothing of it, not even its name.
    await sign_in(browser, oscar, PASSWORD)
    await browser.until_text("h1", "Other Corp")
    await browser.open(f"/bc/{business_center}")
    await browser.until_text("h1", "Nothing to show")
    page = await browser.text()
    assert "Readonly Ltd" not in page and "USD" not in page
    await browser.open(f"/bc/{business_center}/invoices")
    await browser.until_text("h1", "Nothing to show")
    await browser.open(f"/bc/{business_center}/ad-accounts")
    assert "Nothing to show" in await browser.text()
    await browser.open(f"/bc/{other}")
    await browser.until_text("h1", "Other Corp")
    await browser.screenshot("other-business-center")
    # (The 404 answers above are a page's own status; they are not script errors.)
    errors = [error for error in await browser.errors() if "404" not in str(error.get("message"))]
    assert errors == [], errors


async def test_c1_c2_w2_a_prepaid_campaign_booked_and_reduced_and_aba_enabled_from_the_page(
    console: ConsoleWorld,
    browser: Browser,
) -> None:
    from .conftest import PASSWORD

    platform = console.platform
    fiona = await console.person("Fiona Admin")
    business_center = await console.business_center(fiona, name="Prepaid Partners")
    admin_token = await console.sign_in(fiona)
    account = await console.ad_account(business_center, admin_token)
    await platform.billing.subscribe(account)
    await console.paid_top_up(admin_token, account, 50 * USD)
    await console.until_balance(account, 50 * USD)

    await sign_in(browser, fiona, PASSWORD)
    await browser.until_text("h1", "Prepaid Partners")
    # C1: a prepaid campaign is created as a draft, then activated: its budget is booked as holds.
    create = 'form[aria-label="Create a prepaid campaign"]'
    await browser.fill("Name", "Winter sale", within=create)
    await browser.fill("Budget (USD)", "30", within=create)
    await browser.press("Create campaign")
    created = (
        await browser.text("#outcome-campaign") if await browser.until_text("#outcome-campaign", "draft") >= 0 else ""
    )
    campaign_id = created.split("Campaign ", 1)[1].split(" ", 1)[0]
    change = 'form[aria-label="Activate or change a campaign"]'
    await browser.fill("Campaign id", campaign_id, within=change)
    await browser.press("Apply to campaign")
    await browser.until_text("#outcome-campaign-command", f"Campaign {campaign_id} is")
    platform.campaigns.token = PLATFORM  # read as the platform operator
    await platform.campaigns.campaign_until(campaign_id, status="active", booked_micros=30 * USD)
    # The ad accounts table lists the account's campaigns (the campaign service's list), live.
    await browser.until_text(f'li[data-campaign="{campaign_id}"]', "Winter sale")
    await browser.until_text(f'li[data-campaign="{campaign_id}"]', "prepaid · active · budget 30.00, booked 30.00")
    await browser.until_text(f'tr[data-ad-account="{account}"]', "USD 20.00")  # 50 less the 30 booked

    # C2: a lower budget gives the difference back at once.
    await browser.choose("Do", "change the budget", within=change)
    await browser.fill("New budget (USD)", "10", within=change)
    await browser.press("Apply to campaign")
    await browser.until_text("#outcome-campaign-command", "booked 10.00")
    await browser.until_text(f'tr[data-ad-account="{account}"]', "USD 40.00")
    # Below the minimum budget: the API's typed error, in words.
    await browser.fill("New budget (USD)", "0.5", within=change)
    await browser.press("Apply to campaign")
    await browser.until_text("#outcome-campaign-command", "budget_below_minimum")

    # W2: ABA is one-way; the form says so and asks to confirm.
    aba = 'form[aria-label="Enable Automatic Balance Allocation"]'
    assert "cannot be switched off" in await browser.text(aba)
    await browser.tick("I understand ABA cannot be switched off", within=aba)
    await browser.press("Enable ABA")
    await browser.until_text("#outcome-aba", "Automatic Balance Allocation is on")
    await browser.open(f"/bc/{business_center}")
    await browser.until_text('[data-figure="aba"]', "on")
    assert "Enable ABA" not in await browser.text(), "no switch back: the form is gone"
    await browser.screenshot("campaign-and-aba")
    await no_console_errors(browser)


async def test_o2_o3_o5_the_seller_accepts_and_completes_an_order_and_the_buyer_disputes_it(
    console: ConsoleWorld,
    browser: Browser,
) -> None:
    from .conftest import PASSWORD

    fiona = await console.person("Fiona Buyer")
    buyer = await console.business_center(fiona, name="Buyer Brands")
    sam = await console.person("Sam Seller")
    seller = await console.business_center(sam, name="Gaming Weekly")
    fiona_token = await console.sign_in(fiona)
    await console.paid_top_up(fiona_token, buyer, 10 * USD)
    await console.until_balance(buyer, 10 * USD)
    channel = f"channel-{seller}"
    answer = await console.escrow_call(
        "POST",
        "/v1/channels",
        PLATFORM,
        {"id": channel, "name": "Gaming Weekly", "seller_user_id": sam, "owner_id": seller, "currency": "USD"},
    )
    assert answer.status_code == 201, answer.text

    async def placed() -> str | None:
        answer = await console.escrow_call(
            "POST",
            "/v1/orders",
            fiona_token,
            {"channel_id": channel, "buyer_owner_id": buyer, "price_micros": 4 * USD, "currency": "USD"},
        )
        return str(answer.json()["id"]) if answer.status_code == 201 else None

    from ..waits import until

    order_id = str(await until(placed, "the order placed once escrow knows the buyer", timeout_s=60))
    await console.order_until(order_id, fiona_token, "awaiting_seller")

    order = 'form[aria-label="Act on an order"]'

    async def act(command: str, reason: str = "") -> str:
        await browser.fill("Order id", order_id, within=order)
        await browser.choose("Do", command, within=order)
        await browser.fill("Reason (decline, dispute)", reason, within=order)
        await browser.run(lambda d: d.execute_script("document.getElementById('outcome-order').textContent = '';"))
        await browser.press("Apply to order")
        return await browser.until_filled("#outcome-order")

    # The seller (O2, O3): accept, creatives approved, complete.
    await sign_in(browser, sam, PASSWORD)
    await browser.until_text("h1", "Gaming Weekly")
    assert "accepted" in await act("accept")
    assert "ready" in await act("creatives approved")
    assert "complete" in await act("complete")
    # The buyer may not complete it: the API's refusal, in words.
    await sign_in(browser, fiona, PASSWORD)
    await browser.until_text("h1", "Buyer Brands")
    refused = await act("complete")
    assert "Refused" in refused and "permission_denied" in refused, refused
    # O5: the buyer disputes within 48 hours; the funds stay frozen.
    assert "disputed" in await act("dispute", "the creatives never ran")
    await console.order_until(order_id, fiona_token, "disputed")
    await browser.screenshot("order-disputed")
    await no_console_errors(browser)


async def test_w13_overview_charts_the_day_closes_and_spend_per_day_and_shows_the_runway(
    console: ConsoleWorld,
    browser: Browser,
) -> None:
    """Runs last in the module: it moves the world's clock by days (T1)."""
    from datetime import UTC, datetime

    from .conftest import PASSWORD

    platform = console.platform
    fiona = await console.person("Fiona Admin")
    business_center = await console.business_center(fiona, name="Northwind Ads")
    admin_token = await console.sign_in(fiona)
    account = await console.ad_account(business_center, admin_token)
    await platform.billing.subscribe(account)
    await console.paid_top_up(admin_token, account, 300 * USD)
    await console.until_balance(account, 300 * USD)
    await platform.operate(business_center, account)
    campaigns = platform.campaigns
    campaign_id = await campaigns.create(1000 * USD, platform.clock.now() + timedelta(days=20), funding_mode="drawdown")
    assert (
        await campaigns.command("POST", f"/v1/campaigns/{campaign_id}/activate", campaigns.token)
    ).status_code == 200
    await campaigns.campaign_until(campaign_id, status="active")
    await platform.spend_consumer_knows(
        account, campaign_id, lambda row: row["status"] == "active", "the active campaign"
    )

    # Three days of spend, each day closed by the wallet (W13): 40, then 60, then 25 so far today.
    start = platform.clock.now()
    left = 300 * USD
    for day, spent in enumerate((40, 60, 25)):
        if day:
            platform.clock.set(
                datetime.combine(start.date() + timedelta(days=day), datetime.min.time(), UTC) + timedelta(hours=9)
            )
            assert await console.close_days(), "a day closed"
        await platform.send(platform.spend(account, campaign_id, spent * USD))
        left -= spent * USD
        await console.until_balance(account, left)

    await sign_in(browser, fiona, PASSWORD)
    await browser.until_text("h1", "Northwind Ads")
    bars = await browser.run(lambda d: len(d.find_elements("css selector", "svg[aria-label='Spend per day'] rect")))
    assert bars == 3, "a bar for each closed day and one for today so far"
    titles = await browser.run(
        lambda d: [
            e.get_attribute("textContent")
            for e in d.find_elements("css selector", "svg[aria-label='Spend per day'] rect title")
        ]
    )
    assert [title.split(": ")[1] for title in titles] == ["USD 40.00", "USD 60.00", "USD 25.00"], titles
    points = await browser.run(
        lambda d: d.find_element("css selector", "svg[aria-label='Balance at each day close'] polyline").get_attribute(
            "points"
        )
    )
    assert points and len(points.split()) == 2, points
    # Runway: what is available (175) ÷ the average daily spend of the last 7 days ((40 + 60 + 25) ÷ 7):
    # 175 × 7 ÷ 125 = 9.8, whole days: 9.
    runway = await browser.text('[data-figure="runway"]')
    assert "Runway: 9 days" in runway, runway
    await browser.screenshot("overview", also=overview_screenshot_target())
    await no_console_errors(browser)


async def test_u1_u4_u6_w9_teams_user_balances_and_a_send_approved_from_the_page_an_analyst_refused(
    console: ConsoleWorld, browser: Browser
) -> None:
    from .conftest import PASSWORD

    fiona = await console.person("Fiona Admin")
    business_center = await console.business_center(fiona, name="Gifting Co")
    ann = await console.person("Ann Analyst")
    await console.grant(business_center, ann, "analyst")
    source = await console.funding_source(business_center)
    identity = console.platform.billing.identity
    assert identity is not None
    crm = await identity.integration("crm", scopes=("sends",), replicas=console.replicas)
    await identity.grant(business_center, crm.user_id, "operator", replicas=console.replicas)
    fiona_token = await console.sign_in(fiona)
    campaign = unique("camp")
    await console.sends_call(
        "POST",
        "/v1/send-campaigns",
        fiona_token,
        {"id": campaign, "business_center_id": business_center, "name": "Thank-you gifts",
         "charge_to": "funding_source", "funding_source_id": source, "require_approval": True},
    )
    gift = {"campaign_id": campaign, "item_kind": "egift", "description": "Coffee card", "price_micros": 12 * USD}
    waiting = await console.sends_call("POST", "/v1/sends", crm.token, gift)
    assert waiting["state"] == "awaiting_approval"

    # The Admin creates a team and sets a user's budget from the page (U1, U6), and sees both.
    await sign_in(browser, fiona, PASSWORD)
    await browser.until_text("h1", "Gifting Co")
    await browser.press("Sends")
    await browser.until_text("h1", "Sends")
    team = unique("team")
    await browser.fill("Team id", team)
    await browser.fill("Name", "Sales")
    await browser.fill("Funding source id", source)
    await browser.press("Create team")
    await browser.until_text("#outcome-team", "created")
    await browser.open(f"/bc/{business_center}/sends")
    await browser.fill("User id", ann)
    await browser.choose("Team", "Sales")
    await browser.fill("Budget (USD)", "25")
    await browser.choose("At each period", "rollover")
    await browser.press("Set budget")
    await browser.until_text("#outcome-user-balance", "left to send")
    await console.source_balance_until(source, -25 * USD)  # the initial budget, charged to the team's source (U6)
    await browser.open(f"/bc/{business_center}/sends")
    await browser.until_text(f'tr[data-team="{team}"]', source)
    row = await browser.text(f'tr[data-user-balance="{ann}"]')
    assert all(part in row for part in (team, "25.00", "rollover monthly")), row
    assert "25.00" in await browser.text(f'tr[data-user-balance="{ann}"] [data-figure="left"]')

    # The integration's send waits for approval; the Admin approves it and it is charged (U4).
    assert "Coffee card" in await browser.text(f'tr[data-send="{waiting["id"]}"]')
    await browser.press(f"Approve send {waiting['id']}")
    await browser.until_text("#outcome-decide", "charged")
    assert "12.00" in await browser.text("#outcome-decide")
    await console.source_balance_until(source, -37 * USD)
    await browser.open(f"/bc/{business_center}/sends")
    await browser.until_text(f'tr[data-send="{waiting["id"]}"] [data-state]', "charged")
    assert "No sends are waiting for approval" in await browser.text('section[aria-label="Sends awaiting approval"]')
    await browser.screenshot("sends-approved")
    await no_console_errors(browser)

    # An analyst sees the teams and the waiting send, but not others' balances; the approval is refused in words.
    second = await console.sends_call("POST", "/v1/sends", crm.token, gift)
    await sign_in(browser, ann, PASSWORD)
    await browser.until_text("h1", "Gifting Co")
    await browser.open(f"/bc/{business_center}/sends")
    await browser.until_text(f'tr[data-team="{team}"]', "Sales")
    assert "permission_denied" in await browser.text('section[aria-label="User balances"]')
    await browser.press(f"Approve send {second['id']}")
    await browser.until_text("#outcome-decide", "Refused")
    refusal = await browser.text("#outcome-decide")
    assert "permission_denied" in refusal, refusal
    assert (await console.sends_call("GET", f"/v1/sends/{second['id']}", fiona_token))["state"] == "awaiting_approval"
    await browser.screenshot("sends-analyst-refused")
    await no_console_errors(browser)
