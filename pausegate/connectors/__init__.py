"""Connectors: one interface per capability, the real implementation beside it."""
