"""Durable storage for the runtime: the ``Storage`` protocol and its implementations."""

from ._base import PersistedState, Storage

__all__ = ["PersistedState", "Storage"]
