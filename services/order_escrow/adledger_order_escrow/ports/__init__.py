"""Interfaces the order_escrow core needs from the outside, in domain words."""
