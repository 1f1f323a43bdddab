"""What the wallet's core needs from the outside, in domain words: its store (`store.py`) and the
shared ledger's port (`adledger_ledger.ports.Ledger`)."""
