"""Audit sources: who touched the data over a window (database logs, the fleet's trail, JSONL files)."""
