"""The public API: everything in ``__all__`` exists, and nothing private leaks into it."""

import importlib
import subprocess
import sys

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


def test_the_clients_are_imported_on_first_use() -> None:
    # A node (the daemon) never uses them: importing raftkv leaves them out of its start-up.
    code = (
        "import sys, raftkv\n"
        "assert 'raftkv.client' not in sys.modules\n"
        "from raftkv import Client\n"
        "import raftkv.client\n"
        "assert Client is raftkv.client.Client\n"
        "assert raftkv.AsyncClient is raftkv.client.AsyncClient\n"
        "try:\n"
        "    raftkv.NoSuchThing\n"
        "except AttributeError as exc:\n"
        "    assert 'NoSuchThing' in str(exc)\n"
        "else:\n"
        "    raise AssertionError('no AttributeError')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
