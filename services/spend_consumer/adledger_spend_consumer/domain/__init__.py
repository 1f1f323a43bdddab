"""Pure rules of the spend_consumer service: no I/O, no awaits."""
