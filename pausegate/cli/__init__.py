"""The pausegate command line."""
