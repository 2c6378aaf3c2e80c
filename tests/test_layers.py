"""docs/architecture.md's layers: every import of ``iga`` inside the package goes to a lower layer."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "iga"
#: Top-level package or module -> layer (docs/architecture.md, "The layers").
LAYER = {
    "utils": 0, "config": 0, "distributed": 0,
    "isomers": 1,
    "models": 2,
    "gradients": 3, "evaluation": 3,
    "algorithms": 4, "teachers": 4,
    "training": 5,
    "runs": 6, "external": 6,
    "sweeps": 7, "integrations": 7,
    "experiments": 8,
    "commands": 9,
    "cli": 10,
    "__main__": 11,
}  # fmt: skip
#: Known, documented exceptions: (importing file, imported module).
EXCEPTIONS = {
    ("gradients/stacked.py", "iga.algorithms.mask"),  # numeric constants read at call time (see its comment)
    ("gradients/stacked.py", "iga.algorithms.projection"),
}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("iga."):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("iga.")}
    return found


def test_every_package_has_a_layer():
    tops = {
        p.name.removesuffix(".py") for p in SRC.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()
    }
    assert tops - {"__init__"} == set(LAYER)


def test_imports_go_down_only():
    upward = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).as_posix()
        source = rel.split("/")[0].removesuffix(".py")
        if source == "__init__":  # the package's own exports (IGAOptimizer, ...)
            continue
        for module in sorted(_imports(path)):
            target = module.split(".")[1]
            if target != source and LAYER[target] >= LAYER[source] and (rel, module) not in EXCEPTIONS:
                upward.append(f"{rel} imports {module}")
    assert upward == []
