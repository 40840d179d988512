"""The package's module-level imports form no circle (a lazy import inside a function is not counted;
``if TYPE_CHECKING:`` imports neither)."""

from __future__ import annotations

import ast
from pathlib import Path

import quantspec

ROOT = Path(quantspec.__file__).resolve().parent


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in tree.body:  # module level only
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            if node.level:
                pkg = name.split(".")[: len(name.split(".")) - node.level + (1 if path.name == "__init__.py" else 0)]
                base = ".".join([*pkg, node.module])
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        for target in targets:
            t = target
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name and not name.startswith(t + "."):  # a package importing itself is not a cycle
                out.add(t)
    return out


def test_no_import_cycles() -> None:
    paths = {(_module(p)): p for p in ROOT.rglob("*.py")}
    known = set(paths)
    graph = {m: _imports(p, m, known) for m, p in paths.items()}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for dep in sorted(graph.get(m, ())):
            if state.get(dep) == 1:
                cycles.append([*stack[stack.index(dep):], dep])
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert cycles == [], "\n".join(" -> ".join(c) for c in cycles)


def test_the_runtime_imports_only_what_the_planner_exports() -> None:
    import importlib

    exported = set(importlib.import_module("quantspec.plan").__all__)  # quantspec.plan is also a function
    for path in (ROOT / "runtime").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("quantspec.plan"):
                assert node.module == "quantspec.plan", f"{path.name} imports {node.module}"
                assert {a.name for a in node.names} <= exported, path.name
