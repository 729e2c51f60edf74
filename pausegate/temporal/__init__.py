"""Pauses as Temporal workflows: the one client every face builds, the operations on pauses, the worker."""
