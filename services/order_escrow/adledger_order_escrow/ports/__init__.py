"""What the core needs, as small protocols: the use cases it offers (`inbound`), the repositories
and the unit of work it runs them in; the adapters implement them, `inject` wires them."""
