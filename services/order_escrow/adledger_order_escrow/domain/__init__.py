"""Pure rules of the order_escrow service: no I/O, no awaits."""
