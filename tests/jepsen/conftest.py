"""The real-process fixtures of the end-to-end tests."""

from e2e.conftest import cluster_factory

__all__ = ["cluster_factory"]
