"""Ingest: validate, authenticate, normalise to `Event`, append to the log, then acknowledge."""
