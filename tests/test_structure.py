"""The package's structure: no two modules import each other (lazily or not; type-only imports aside)."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "pcbm"


def _module(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_nodes(tree: ast.AST):
    """Every node except those under ``if TYPE_CHECKING:`` (type-only imports are not a dependency)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and getattr(child.test, "id", None) == "TYPE_CHECKING":
                stack.extend(child.orelse)
                continue
            stack.append(child)


def _imports() -> dict[str, set[str]]:
    mods = {_module(p): p for p in PKG.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            graph[mod] |= {n for n in names if n in mods and n != mod and not mod.startswith(n + ".")}
    return graph


def test_no_module_pair_imports_each_other() -> None:
    graph = _imports()
    pairs = sorted({tuple(sorted((a, b))) for a, deps in graph.items() for b in deps
                    if a in graph.get(b, set()) and not b.startswith(a + ".") and not a.startswith(b + ".")})
    assert pairs == [], f"modules that import each other: {pairs}"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles of any length: strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
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
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_circle_of_any_length() -> None:
    graph = _imports()
    for a in graph:  # a package importing its own submodules is how packages work, not a circle
        graph[a] = {b for b in graph[a] if not b.startswith(a + ".")}
    assert _cycles(graph) == []


#: pcbm's layers, lowest first (CONTRIBUTING.md, "Where things go"): a module imports only from its own
#: package or from a lower layer, never up.
LAYERS = (
    {"errors", "validate", "_io", "layout", "concepts", "prediction", "reliability"},
    {"data"},
    {"pipeline"},
    {"models", "runtime"},
    {"training", "export", "navigation", "registry"},
    {"benchmark", "predictor"},
    {"explain"},
    {"live", "serve"},
    {"_commands", "cli", "__main__"},
)


def _layer(module: str) -> int | None:
    part = module.split(".")[1] if "." in module else None
    return next((i for i, names in enumerate(LAYERS) if part in names), None)


def test_every_package_has_a_layer_and_no_import_goes_up() -> None:
    graph = _imports()
    tops = {m.split(".")[1] for m in graph if "." in m}
    assert tops <= set().union(*LAYERS), f"packages without a layer in LAYERS: {sorted(tops - set().union(*LAYERS))}"
    up = sorted((a, b) for a, deps in graph.items() for b in deps if "." in b and "." in a
                and a.split(".")[1] != b.split(".")[1] and _layer(b) > _layer(a))
    assert up == [], f"imports that go up a layer: {up}"


def test_the_checks_see_a_circle_and_an_arrow_up() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]
    assert _layer("pcbm.serve.app") > _layer("pcbm.pipeline") > _layer("pcbm.concepts.ontology")
