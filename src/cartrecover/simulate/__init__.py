"""Generated shop traffic that drives a running engine through its public API only."""
