"""How the code is layered: the app package never imports the process entry points, and libraries are used
through their public API only."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIBRARIES = ("dramatiq", "urllib3", "requests", "redis")


def python_files(*folders: str) -> list[Path]:
    return sorted(path for folder in folders for path in (ROOT / folder).rglob("*.py"))


def imports(path: Path):
    """(module, name) for every import in a file; name is None for `import module`."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                yield node.module, alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None


@pytest.mark.parametrize("path", python_files("webhooks_app"), ids=lambda path: str(path.relative_to(ROOT)))
def test_the_app_package_never_imports_the_process_entry_points(path):
    """Nothing under webhooks_app/ imports tasks/ (the worker and scheduler processes import the app)."""
    assert [module for module, _ in imports(path) if module == "tasks" or module.startswith("tasks.")] == []


@pytest.mark.parametrize("path", python_files("webhooks_app", "tasks"), ids=lambda path: str(path.relative_to(ROOT)))
def test_libraries_are_used_through_their_public_api(path):
    """No private module or name (a leading underscore) of Dramatiq, urllib3, requests or redis is imported."""
    private = [f"{module}:{name}" for module, name in imports(path)
               if module.split(".")[0] in LIBRARIES
               and (any(part.startswith("_") for part in module.split(".")) or (name or "").startswith("_"))]
    assert private == []


def test_no_module_of_the_app_is_over_400_lines():
    """Modules stay small enough to read: none of webhooks_app/ or tasks/ is over 400 lines."""
    long = {str(path.relative_to(ROOT)): count for path in python_files("webhooks_app", "tasks")
            if (count := len(path.read_text().splitlines())) > 400}
    assert long == {}
