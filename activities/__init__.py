"""Every side effect of a pause: thin, idempotent methods over connectors."""
