"""The embedded default: one command starts Temporal, PostgreSQL, the reference services, the API and workers."""
