"""Pure domain of sends and user balances (U1-U6): no I/O."""
