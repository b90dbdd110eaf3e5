"""jno's import graph follows the layers of docs/architecture.md.

Every module under ``jno/`` is parsed with ``ast`` (nothing is imported), and every import
statement counts, module-level or inside a function: a function-level import is still an
arrow, only a later one. Importing ``jno.x.y`` runs the ``__init__`` of ``jno`` and ``jno.x``
first; those implicit arrows are Python's, not the module's, and are not counted.

Layers, bottom to top: the bottom modules (import nothing of jno) < ``jno.trace`` <
``jno.lower`` < ``jno.solve`` < ``jno.crux`` < the ``jno`` package itself. A layer imports
only from layers below it and from itself. The side modules (domain, nn, np, noise, sym,
bayesian, inference, metrics, plot) may import the bottom modules, the core layers below
``crux`` and each other; trace, lower and solve import no side module.
"""

from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1] / "jno"

BOTTOM = {
    "jno.compile_cache",
    "jno.constraints",
    "jno.family",
    "jno.kernels",
}
CORE = {"jno.trace": 1, "jno.lower": 2, "jno.solve": 3, "jno.crux": 4}
SIDE = {
    "jno.bayesian",
    "jno.domain",
    "jno.fields",
    "jno.inference",
    "jno.metrics",
    "jno.nn",
    "jno.noise",
    "jno.np",
    "jno.plot",
    "jno.sym",
}
TOP = {"jno", "jno.__main__"}  # and the runnable examples, jno.examples.*

# Arrows the rules forbid but that stay, each with its reason.
ALLOWED_ARROWS = {
    # The DSL's deep ensemble (docs/architecture.md) runs jno.inference's member update on its
    # EnsembleState. jno.inference is self-contained (it imports nothing else of jno; checked
    # below), so this arrow cannot close a circle.
    ("jno.solve.blocks.ensemble", "jno.inference.state"),
    ("jno.solve.blocks.ensemble", "jno.inference.step"),
}

# Import circles that stay, each with its reason: a circle must lie within one of these (the
# sets are filled in below, once the modules are known).
ALLOWED_CYCLES: list[set[str]] = []


def _modules() -> dict[str, tuple[pathlib.Path, bool]]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        package = parts[-1] == "__init__"
        if package:
            parts = parts[:-1]
        out[".".join(parts)] = (path, package)
    return out


MODULES = _modules()

# The DSL's fluent methods: a Placeholder's .mse / .grad / ... build derivative and reduction
# nodes, which are Placeholders themselves (docs/architecture.md, Layering).
ALLOWED_CYCLES.append(
    {"jno.trace.node", "jno.trace.derivative", "jno.trace.reduction"}
    | {m for m in MODULES if m.startswith("jno.trace.reductions")}
)


def _known(name: str) -> str:
    """The jno module ``name`` stands for (``jno.trace.config.BayesSettings`` ->
    ``jno.trace.config``)."""
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def _targets(module: str, package: bool, node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [_known(a.name) for a in node.names if a.name.split(".")[0] == "jno"]
    if node.level:
        base = module.split(".") if package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if target.split(".")[0] != "jno":
        return []
    # ``from pkg import sub`` imports the submodule ``pkg.sub`` when there is one
    return [_known(f"{target}.{a.name}") for a in node.names]


def _graph() -> dict[str, dict[str, int]]:
    """``{module: {imported module: line}}`` over every import statement of every module."""
    graph: dict[str, dict[str, int]] = {}
    for module, (path, package) in MODULES.items():
        edges = graph.setdefault(module, {})
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in _targets(module, package, node):
                    if target != module:
                        edges.setdefault(target, node.lineno)
    return graph


GRAPH = _graph()


def _area(module: str) -> tuple[str, int | None]:
    """``("bottom" | "core" | "side" | "top", rank)`` of a module."""
    if module in BOTTOM:
        return "bottom", 0
    if module in TOP or module.startswith("jno.examples"):
        return "top", 5
    for prefix, rank in CORE.items():
        if module == prefix or module.startswith(prefix + "."):
            return "core", rank
    for prefix in SIDE:
        if module == prefix or module.startswith(prefix + "."):
            return "side", None
    raise AssertionError(f"{module} is in no layer: add it to tests/test_layering.py")


def _allowed(module: str, target: str) -> bool:
    (area, rank), (t_area, t_rank) = _area(module), _area(target)
    if area == "top" or t_area == "bottom":
        return True
    if area == "bottom" or t_area == "top":
        return False
    if area == "core":
        if t_area == "core":
            return t_rank <= rank
        return rank == CORE["jno.crux"]  # crux uses the side modules; trace..solve do not
    # side modules: anything below crux, and each other
    return t_area == "side" or t_rank < CORE["jno.crux"]


def test_every_module_has_a_layer():
    for module in MODULES:
        _area(module)


def test_no_upward_arrows():
    wrong = [
        f"{module} -> {target} (line {line})"
        for module, edges in GRAPH.items()
        for target, line in edges.items()
        if not _allowed(module, target) and (module, target) not in ALLOWED_ARROWS
    ]
    assert not wrong, "imports against the layers of docs/architecture.md:\n" + "\n".join(wrong)


def test_allowed_arrows_still_exist():
    """An entry of the allow-list whose import is gone must be dropped from it."""
    stale = [arrow for arrow in ALLOWED_ARROWS if arrow[1] not in GRAPH[arrow[0]]]
    assert not stale


def test_bottom_modules_and_inference_are_self_contained():
    for module in BOTTOM:
        assert not GRAPH[module], f"{module} imports {sorted(GRAPH[module])}"
    for module, edges in GRAPH.items():
        if module.startswith("jno.inference"):
            outside = [t for t in edges if not t.startswith("jno.inference")]
            assert not outside, f"{module} imports {outside}"


def _cycles() -> list[set[str]]:
    """The strongly connected components of the import graph with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm (the graph is ~100 modules deep at most)
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles_but_the_documented_ones():
    """Every circle lies within an allowed one, and every allowed one still has a circle."""
    cycles = _cycles()
    unexpected = [sorted(c) for c in cycles if not any(c <= ok for ok in ALLOWED_CYCLES)]
    assert not unexpected, f"import circles: {unexpected}"
    stale = [sorted(ok) for ok in ALLOWED_CYCLES if not any(c <= ok for c in cycles)]
    assert not stale, f"circles gone, drop them from ALLOWED_CYCLES: {stale}"
