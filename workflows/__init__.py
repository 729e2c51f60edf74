"""Deterministic workflow code only: the procedure of a pause."""
