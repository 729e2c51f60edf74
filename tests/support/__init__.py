"""Test support: the real stack's parts, composed per test."""
