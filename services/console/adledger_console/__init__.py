"""The finance console: pages for the people who top up, set budgets and read invoices, built only
on the platform's public HTTP APIs (identity, wallet, campaign, invoicing, order escrow) and its
public `delivery.state.v1` topic, with the signed-in user's own token."""
