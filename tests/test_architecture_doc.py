"""docs/architecture.md names the code it describes: every such name must still exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "architecture.md"
SOURCE = REPO / "src" / "poolserver"

# `Class.member` or `module.function` in backticks; other dotted names (`pool.post` on an
# instance) are skipped unless their first part is a class or module here, and so are file
# names and the WSGI environ's own keys.
_REFERENCE = re.compile(r"`(_?[A-Za-z][A-Za-z0-9_]*)\.(_{0,2}[A-Za-z][A-Za-z0-9_]*)`")
_NOT_CODE = {"py", "input", "errors", "version", "url_scheme", "file_wrapper"}


def _definitions() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Members of every class, and top-level names of every module, in the package."""
    classes: dict[str, set[str]] = {}
    modules: dict[str, set[str]] = {}
    for path in SOURCE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        top = modules.setdefault(path.stem, set())
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                top.add(node.name)
                members = classes.setdefault(node.name, set())
                members.update(_members(node))
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                top.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                top.update(t.id for t in targets if isinstance(t, ast.Name))
    return classes, modules


def _members(node: ast.ClassDef) -> set[str]:
    """Methods, class attributes and `self.x` attributes assigned anywhere in the class."""
    names: set[str] = set()
    for item in ast.walk(node):
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(item.name)
        elif isinstance(item, ast.Attribute) and isinstance(item.value, ast.Name):
            if item.value.id == "self":
                names.add(item.attr)
        elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            names.add(item.target.id)
    return names


def test_every_class_member_and_module_function_the_architecture_names_exists() -> None:
    classes, modules = _definitions()
    checked, missing = 0, []
    for owner, member in _REFERENCE.findall(DOC.read_text()):
        if member in _NOT_CODE:
            continue
        if owner in classes:
            known = classes[owner]
        elif owner in modules:
            known = modules[owner]
        else:
            continue
        checked += 1
        if member not in known:
            missing.append(f"{owner}.{member}")
    assert checked > 30, "the pattern no longer finds the doc's references"
    assert missing == []
