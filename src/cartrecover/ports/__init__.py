"""Ports: what the stages need from the outside world, as small Protocols."""
