"""What the invoicing core needs from the outside, in domain words: its store and its unit of
work (`store.py`, `unit_of_work.py`), the payment provider (`payments.py`), and the shared
ledger's own port (`adledger_ledger.ports.Ledger`)."""
