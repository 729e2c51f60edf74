"""A program's runbook: its model, and the loader that reads YAML with located errors."""
