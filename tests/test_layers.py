"""The house's layers point down: no module imports from a layer above its own, and no two
modules import each other (directly or round a longer loop). Imports inside functions count.

The layers, bottom to top (docs/architecture.md draws them):
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "echoforge"

# Prefix of a dotted module name → its layer; the longest matching prefix wins.
LAYERS = {
    "echoforge": 0, "echoforge.errors": 0, "echoforge.native": 0, "echoforge.seeding": 0, "echoforge.registry": 0,
    "echoforge.hashing": 0,
    "echoforge.config": 1, "echoforge.storage": 1, "echoforge.audio": 1, "echoforge.schemas": 1,
    "echoforge.io": 2,
    "echoforge.text": 3, "echoforge.backends": 3,
    "echoforge.transforms": 4,
    "echoforge.pipeline": 5,
    "echoforge.commands": 6,
    "echoforge.cli": 7, "echoforge.__main__": 7,
}


def layer(module: str) -> int:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len, default=None)
    assert best is not None, f"{module} is in no layer: add it to LAYERS and to docs/architecture.md"
    return LAYERS[best]


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str], root: Path = ROOT) -> set[str]:
    """The echoforge modules ``path`` imports (``from a.b import c`` names a.b.c when c is a module)."""
    me = module_name(path, root)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                out.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {m for m in out if m in modules and m != me}


def graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(paths)
    return {m: imports_of(p, modules) for m, p in paths.items()}


def test_no_module_imports_from_a_layer_above_its_own():
    upward = sorted(f"{m} (layer {layer(m)}) imports {d} (layer {layer(d)})"
                    for m, deps in graph().items() for d in deps if layer(d) > layer(m))
    assert not upward, "\n".join(upward)


def test_no_import_cycles():
    g = graph()
    # a package's __init__ importing its own modules is how packages register; not a loop
    g = {m: {d for d in deps if not d.startswith(m + ".")} for m, deps in g.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    assert not cycles, "modules that import each other: " + "; ".join(", ".join(c) for c in cycles)


def test_the_walker_sees_function_level_and_relative_imports(tmp_path):
    pkg = tmp_path / "echoforge"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "a.py").write_text("def f():\n    from . import b\n    from echoforge.sub.b import x\n")
    (pkg / "sub" / "b.py").write_text("x = 1\n")
    mods = {"echoforge.sub", "echoforge.sub.a", "echoforge.sub.b"}
    assert imports_of(pkg / "sub" / "a.py", mods, tmp_path) == {"echoforge.sub.b"}
