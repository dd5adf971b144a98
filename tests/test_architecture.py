"""The layout's import rules (docs/ARCHITECTURE.md): shared services import no recipe, and
no engine imports another engine's module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "lstmlab"
ENGINE_MODULES = {"reference", "native", "fused"}


def imported_modules(path: Path) -> set[str]:
    """Absolute names of every module `path` imports (relative imports resolved)."""
    package = list(path.relative_to(PACKAGE.parent).parts[:-1])  # the folder: lstmlab/engines -> ["lstmlab", "engines"]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def python_files(*folders: str) -> list[Path]:
    return sorted(path for folder in folders for path in (PACKAGE / folder).rglob("*.py"))


@pytest.mark.parametrize("path", [*python_files("inspect", "models", "cli", "data"),
                                  PACKAGE / "train.py", PACKAGE / "checkpoint.py", PACKAGE / "runs.py"],
                         ids=lambda path: str(path.relative_to(PACKAGE)))
def test_shared_services_import_no_recipe(path):
    recipes = sorted(name for name in imported_modules(path) if name.startswith("lstmlab.recipes."))
    assert not recipes, f"{path.name} imports {recipes}; reach recipes through lstmlab.recipes.registry()"


@pytest.mark.parametrize("path", python_files("engines"), ids=lambda path: path.name)
def test_no_engine_imports_another_engine(path):
    own = path.stem.split("_")[0]
    for name in imported_modules(path):
        parts = name.split(".")
        if parts[:2] == ["lstmlab", "engines"] and len(parts) > 2 and path.name != "__init__.py":
            other = parts[2].split("_")[0]
            assert other not in ENGINE_MODULES or other == own, f"{path.name} imports {name}"


def test_the_rules_see_imports():
    """The checker itself: it finds a relative import of another engine and a recipe import."""
    names = imported_modules(PACKAGE / "engines" / "native.py")
    assert "lstmlab.engines.base.EngineResult" in names
    assert any(name.startswith("lstmlab.recipes.") for name in imported_modules(PACKAGE / "recipes" / "lm" / "demo.py"))
