"""The decision core and the simulator stay pure: no I/O frameworks imported."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import surge_operator.policy
import surge_operator.simulate

FORBIDDEN = ("kopf", "kubernetes", "nats", "structlog", "asyncio", "time", "aiohttp")


def _modules(package: object) -> list[Path]:
    root = Path(package.__file__).parent  # type: ignore[attr-defined]
    return sorted(root.rglob("*.py"))


@pytest.mark.parametrize(
    "path",
    _modules(surge_operator.policy) + _modules(surge_operator.simulate),
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_module_imports_nothing_that_does_io(path: Path) -> None:
    tree = ast.parse(path.read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & set(FORBIDDEN)
