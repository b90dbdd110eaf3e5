"""The solve layer's shape, as issue 20 fixed it: small modules and functions, no dispatch on
node-name strings in the lowering, solve and Bayesian layers, and no reaching into another
module's private attributes. Each rule reads the source with ``ast``."""

import ast
from pathlib import Path

import pytest

JNO = Path(__file__).resolve().parents[1] / "jno"


def modules(*packages):
    for package in packages:
        yield from sorted((JNO / package).rglob("*.py"))


def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def span(node) -> int:
    return node.end_lineno - node.lineno + 1


def test_driver_and_engine_are_small_and_no_solve_function_is_long():
    assert len((JNO / "solve/driver.py").read_text().splitlines()) <= 300
    assert len((JNO / "solve/engine.py").read_text().splitlines()) <= 300
    (solver,) = [
        n for n in parsed(JNO / "solve/driver.py").body if getattr(n, "name", "") == "Solver"
    ]
    assert span(solver) <= 250
    long = [
        f"{path.relative_to(JNO)}:{node.name} ({span(node)} lines)"
        for path in modules("solve")
        for node in ast.walk(parsed(path))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and span(node) > 60
    ]
    assert long == []


@pytest.mark.parametrize("package", ["lower", "solve", "bayesian"])
def test_no_dispatch_on_op_or_kind_strings(package):
    found = []
    for path in modules(package):
        for node in ast.walk(parsed(path)):
            if not isinstance(node, ast.Compare):
                continue
            sides = [node.left, *node.comparators]
            names = {
                s.attr if isinstance(s, ast.Attribute) else getattr(s, "id", None) for s in sides
            }
            strings = [s for s in sides if isinstance(s, ast.Constant) and isinstance(s.value, str)]
            if names & {"op", "kind"} and strings:
                found.append(f"{path.relative_to(JNO)}:{node.lineno}")
    assert found == []


def test_no_access_to_another_objects_private_attributes():
    """``x._name`` only on ``self``/``cls`` (or an object of the same class, in its own
    module: ``old._layout`` in ``Recorder.carry``)."""
    allowed = {("solve/results.py", "old", "_layout")}
    found = []
    for path in JNO.rglob("*.py"):
        rel = str(path.relative_to(JNO))
        for node in ast.walk(parsed(path)):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and node.attr not in ("_replace", "_asdict", "_fields", "_make")
                and isinstance(node.value, ast.Name)
                and node.value.id not in ("self", "cls")
                and (rel, node.value.id, node.attr) not in allowed
            ):
                found.append(f"{rel}:{node.lineno} {node.value.id}.{node.attr}")
    assert found == []
