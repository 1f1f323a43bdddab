"""Interfaces the wallet core needs from the outside, in domain words."""
