"""Interfaces the campaign core needs from the outside, in domain words."""
