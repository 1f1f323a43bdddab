-- Payouts are the wallet's business, not the ledger's (issue 13): the table leaves the ledger's
-- schema. It is renamed, not dropped: the wallet moves its rows into its own schema at start and
-- then drops it, so no payout is lost on an existing deployment.
alter table payouts rename to payouts_legacy;
