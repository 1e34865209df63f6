"""The daemon's routes, one module per concern: seed, kv, members, operations."""
