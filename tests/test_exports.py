"""The public API: everything in ``__all__`` exists, and nothing private leaks into it."""

import importlib

import pytest

PUBLIC_MODULES = [
    "raftkv",
    "raftkv.core",
    "raftkv.storage",
    "raftkv.transport",
    "raftkv.client",
    "raftkv.testing",
]


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_all_names_exist_and_are_public(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported, f"{name} has no __all__"
    for attr in exported:
        assert not attr.startswith("_"), f"{name}.{attr} is private"
        assert hasattr(module, attr), f"{name}.__all__ names a missing {attr}"
    assert len(set(exported)) == len(exported)
