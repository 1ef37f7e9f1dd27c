"""The dependency rules of docs/architecture.md, checked on the code's own imports.

Apps are layered: an app imports only apps below it (a lower app that must
react to a higher one listens to a documented signal). No app reads the
project's settings modules (``django.conf.settings`` is the one way), and no
app reaches into another app's HTTP or WebSocket edge (``api``, ``views``,
``consumers``): shared glue lives in ``apps.common``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

APPS_DIR = Path(__file__).resolve().parent.parent / "apps"

# Bottom to top, as drawn in docs/architecture.md.
LAYERS = (
    "common",
    "audit",
    "customers",
    "businesses",
    "staff",
    "security",
    "visits",
    "verification",
    "queueing",
    "calls",
    "recordings",
    "gates",
    "operations",
    "compliance",
    "console",
    "mobile",
    "demo",
)
EDGE_MODULES = ("api", "views", "consumers")


def _imports(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def _sources() -> Iterator[tuple[str, Path]]:
    for path in sorted(APPS_DIR.rglob("*.py")):
        if "migrations" not in path.parts:
            yield path.relative_to(APPS_DIR).parts[0], path


def test_every_app_is_in_the_documented_layers() -> None:
    apps = {path.name for path in APPS_DIR.iterdir() if (path / "apps.py").exists()}
    assert apps == set(LAYERS)


def test_apps_import_only_apps_below_them() -> None:
    upward = []
    for app, path in _sources():
        for module in _imports(path):
            parts = module.split(".")
            is_other_app = parts[0] == "apps" and len(parts) > 1 and parts[1] != app
            if is_other_app and LAYERS.index(parts[1]) > LAYERS.index(app):
                upward.append(f"{path.relative_to(APPS_DIR)} imports {module}")
    assert upward == []


def test_no_app_imports_the_settings_modules_or_another_apps_edge() -> None:
    found = []
    for app, path in _sources():
        for module in _imports(path):
            parts = module.split(".")
            settings_module = parts[0] == "remotebank"
            other_edge = parts[0] == "apps" and len(parts) > 2 and parts[1] not in (app, "common")
            if settings_module or (other_edge and parts[2] in EDGE_MODULES):
                found.append(f"{path.relative_to(APPS_DIR)} imports {module}")
    assert found == []


@pytest.mark.parametrize("app", ["visits", "verification", "gates"])
def test_the_layer_check_sees_imports(app: str) -> None:
    """Guards the checks above against passing because they read nothing."""
    assert any(module.startswith("apps.") for name, path in _sources() if name == app for module in _imports(path))
