"""raftkv: a strongly consistent key-value store and Raft library for Trio."""

__version__ = "0.1.0"
