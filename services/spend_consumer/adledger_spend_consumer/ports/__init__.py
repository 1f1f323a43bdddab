"""Interfaces the spend_consumer core needs from the outside, in domain words."""
