"""What the identity core needs from the outside, in domain words."""
