"""adledger identity: the platform's one place for users, sign-in, API keys and roles (issue 13)."""
