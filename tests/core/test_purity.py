"""raftkv.core is sans-I/O: standard library only, no clocks, sockets, threads or global random.

import-linter guards imports between packages (``nox -s architecture``); this test reads the
source so that it also catches stdlib modules that do I/O and module-level ``random.*`` calls.
"""

import ast
import sys
from pathlib import Path

import raftkv.core

CORE = Path(raftkv.core.__file__).parent
FORBIDDEN_STDLIB = {
    "asyncio",
    "os",
    "socket",
    "select",
    "selectors",
    "ssl",
    "subprocess",
    "threading",
    "multiprocessing",
    "time",
    "datetime",
    "io",
    "pathlib",
    "shutil",
    "tempfile",
}


def _imports(tree: ast.AST) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def test_core_imports_only_the_standard_library() -> None:
    files = sorted(CORE.glob("*.py"))
    assert len(files) > 5
    for path in files:
        for name in _imports(ast.parse(path.read_text(), str(path))):
            top = name.split(".")[0]
            assert top in sys.stdlib_module_names or top == "__future__", (path.name, name)
            assert top not in FORBIDDEN_STDLIB, f"{path.name} imports {name}: the core does no I/O"


def test_core_never_uses_the_global_random() -> None:
    for path in sorted(CORE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "random"
                and node.func.attr != "Random"
            ):
                raise AssertionError(f"{path.name}:{node.lineno} calls random.{node.func.attr}")
