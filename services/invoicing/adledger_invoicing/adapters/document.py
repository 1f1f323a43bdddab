"""The invoice as a document a person accepts: a self-contained HTML page (print it to PDF from
any browser). Amounts are formatted from integer micros exactly (M1); every text is escaped."""

from __future__ import annotations

from html import escape

from adledger_invoicing.domain.invoices import Invoice, InvoiceStatus, format_money

PAYEE = "adledger — prepaid funds for ad businesses"

_PURPOSES = {
    "top_up": "Top-up of the credit balance",
    "prepayment": "Prepayment",
    "activation_shortfall": "Campaign activation",
    "monthly_spend": "Monthly invoice",
    "funding_source_top_up": "Funding source prepayment",
    "funding_source_day_close": "Funding source, end of day",
    "card_charge": "Card payment",
}

_STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #222; margin: 40px auto; max-width: 760px; }
h1 { font-size: 28px; margin: 0; } .muted { color: #666; } table { width: 100%; border-collapse: collapse; margin-top: 24px; }
th, td { padding: 8px 6px; border-bottom: 1px solid #ddd; text-align: left; } td.amount, th.amount { text-align: right; white-space: nowrap; }
tfoot td { font-weight: bold; border-bottom: none; } .status { display: inline-block; padding: 2px 10px; border-radius: 10px;
background: #eee; text-transform: uppercase; font-size: 12px; letter-spacing: 0.05em; } .status.paid { background: #d7f5dd; }
.parties { display: flex; justify-content: space-between; margin-top: 24px; } .parties div { width: 48%; }
"""


def render_html(invoice: Invoice, *, payer_name: str | None = None) -> str:
    rows = "\n".join(
        f'<tr><td>{escape(line.description)}</td><td class="amount">{escape(format_money(line.amount_micros, invoice.currency))}</td></tr>'
        for line in invoice.lines
    )
    paid = (
        f"<p>Paid on {invoice.paid_at.date().isoformat()} (payment {escape(invoice.payment_id or '')}).</p>"
        if invoice.status is InvoiceStatus.PAID and invoice.paid_at is not None
        else f"<p>Please pay {escape(format_money(invoice.amount_micros, invoice.currency))} by {invoice.due_on.isoformat()}.</p>"
        if invoice.status in (InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE)
        else ""
    )
    payer = escape(payer_name or invoice.payer_id)
    payer_kind = "Funding source" if invoice.payer_kind == "funding_source" else "Account"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Invoice {escape(invoice.display_number)}</title><style>{_STYLE}</style></head>
<body>
<h1>Invoice {escape(invoice.display_number)}</h1>
<p class="muted">{escape(_PURPOSES.get(invoice.purpose.value, invoice.purpose.value))} · <span class="status {escape(invoice.status.value)}">{escape(invoice.status.value)}</span></p>
<div class="parties">
  <div><strong>From</strong><br>{escape(PAYEE)}</div>
  <div><strong>Bill to</strong><br>{payer_kind}: {payer}<br>{escape(invoice.recipient_address or "")}</div>
</div>
<p>Issued: {invoice.issued_at.date().isoformat()} (UTC) · Due: {invoice.due_on.isoformat()} · Currency: {escape(invoice.currency)}</p>
<table>
<thead><tr><th>Description</th><th class="amount">Amount</th></tr></thead>
<tbody>
{rows}
</tbody>
<tfoot><tr><td>Total</td><td class="amount">{escape(format_money(invoice.amount_micros, invoice.currency))}</td></tr></tfoot>
</table>
{paid}
<p class="muted">Invoice id {escape(invoice.id)}. A credit-balance payment applies to future charges only; it does not settle other outstanding invoices.</p>
</body></html>
"""
