"""What the sends core needs from the outside."""
