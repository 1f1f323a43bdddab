"""Pure rules of the wallet service: no I/O, no awaits."""
