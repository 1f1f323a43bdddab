"""Pure rules of the campaign service: no I/O, no awaits."""
