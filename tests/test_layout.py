"""The package layout: the public API, the layering of sub-packages, and the sans-I/O core.

The rules (docs/architecture.md): a package imports only from packages below it; another
package's names come through its ``__init__``, never from its private modules; and nothing
in ``sysstream.sansio`` imports I/O.
"""

from __future__ import annotations

import ast
import importlib
import pathlib
import re

import pytest

import sysstream

SRC = pathlib.Path(sysstream.__file__).parent
ROOT = SRC.parent.parent

# Lowest first: a module may import from its own layer or any layer below it.
LAYERS = [
    {"_sample", "_registry", "_version"},
    {"sansio"},
    {"_settings", "_redis"},
    {"sampling"},
    {"stream"},
    {"store"},
    {"alerts"},
    {"fleet"},
    {"web"},
    {"cli"},
    {"__init__", "__main__"},
]
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}

# What a sans-I/O module may not import: event loops, sockets, threads, files of the
# platform, databases, brokers and web frameworks.
IO_MODULES = {
    "asyncio", "socket", "selectors", "ssl", "threading", "concurrent", "subprocess",
    "sqlite3", "psutil", "redis", "uvicorn", "starlette", "fastapi", "websockets", "os",
}  # fmt: skip


def unit_of(path: pathlib.Path) -> str:
    relative = path.relative_to(SRC)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def modules() -> list[pathlib.Path]:
    return sorted(SRC.rglob("*.py"))


def relative_imports(path: pathlib.Path) -> list[tuple[str, int]]:
    """(target unit, line) of every relative import in ``path``, private module included."""
    tree = ast.parse(path.read_text())
    package = path.relative_to(SRC).parts[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)]
            target = (*base, *(node.module.split(".") if node.module else ()))
            found.append((".".join(target), node.lineno))
    return found


def test_public_api_is_pinned() -> None:
    assert sorted(sysstream.__all__) == [
        "MetricsHub",
        "Sample",
        "Settings",
        "SettingsError",
        "View",
        "WebSocketProtocol",
        "__version__",
        "create_app",
        "dashboard",
        "load_settings",
        "operations",
        "router",
    ]
    for name in sysstream.__all__:
        assert getattr(sysstream, name) is not None


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_go_downward_and_through_package_inits(path: pathlib.Path) -> None:
    own = unit_of(path)
    for target, line in relative_imports(path):
        parts = target.split(".") if target else ["__init__"]
        unit = parts[0]
        if unit == own:
            continue
        where = f"{path.relative_to(SRC)}:{line} imports {target or 'sysstream'}"
        assert RANK[unit] <= RANK[own], f"{where}: expected a layer at or below {own}"
        if unit in {"sansio", "sampling", "stream", "store", "fleet", "web", "cli"}:
            assert len(parts) == 1, f"{where}: expected the package's __init__, got a module"


@pytest.mark.parametrize("path", sorted((SRC / "sansio").glob("*.py")), ids=lambda p: p.name)
def test_sansio_modules_import_no_io(path: pathlib.Path) -> None:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            assert top not in IO_MODULES, f"{path.name}:{node.lineno}: expected no I/O, got {name}"


def test_package_inits_export_what_they_import() -> None:
    for init in SRC.glob("*/__init__.py"):
        module = importlib.import_module(f"sysstream.{init.parent.name}")
        exported = getattr(module, "__all__", [])
        for name in exported:
            assert hasattr(module, name), f"{init.parent.name}.__all__ names missing {name}"


def test_architecture_doc_names_real_modules() -> None:
    text = (ROOT / "docs/architecture.md").read_text()
    assert len(text.splitlines()) < 150
    named = set(re.findall(r"`(sysstream(?:\.[A-Za-z_]+)+)`", text))
    assert len(named) >= 20, "expected the doc to name the modules it describes"
    for dotted in sorted(named):
        try:
            importlib.import_module(dotted)
        except ModuleNotFoundError:
            module, _, attribute = dotted.rpartition(".")
            assert hasattr(importlib.import_module(module), attribute), f"{dotted} does not resolve"
