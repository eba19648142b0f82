"""Channels that stay on this machine: the console (and a JSON-lines file of everything sent), and null."""
