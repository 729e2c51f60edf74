"""Analyses of sealed evidence and catalogs, no I/O of their own."""
