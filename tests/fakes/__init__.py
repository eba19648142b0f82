"""Local stand-ins that speak real providers' protocols over real HTTP, for tests."""
