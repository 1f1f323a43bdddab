"""Interfaces the invoicing core needs from the outside, in domain words."""
