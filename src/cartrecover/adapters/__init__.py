"""Adapters: one folder per technology, mirroring the port files. Only `bootstrap` imports them."""
