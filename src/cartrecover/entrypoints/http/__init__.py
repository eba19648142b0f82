"""The HTTP API (Litestar, served by Granian)."""
