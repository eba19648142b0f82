"""Decide: for an abandoned cart, whether, how, when and with what to reach out — a Plan of steps."""
