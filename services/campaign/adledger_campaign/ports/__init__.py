"""What the campaign core needs from the outside, in domain words: its store (`store`) and the
unit of work that carries a use case's transaction and outgoing messages (`unit_of_work`)."""
