"""The domain: events, carts and money. Imports nothing else of the project."""
