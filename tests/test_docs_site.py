"""The documentation site, checked without building it (``mkdocs build --strict`` is CI's job).

* Every page named in the ``nav`` of ``mkdocs.yml`` exists, every Markdown page under
  ``docs/`` is in the nav, and every tutorial ``tutorials/<name>.py`` is rendered: a symlink
  ``docs/tutorials/<name>.py`` pointing at it, listed in the nav.
* The API pages (``docs/api/*.md``) document every public name of ``jno``, ``jno.bayesian``,
  ``jno.inference``, ``jno.metrics``, ``jno.plot`` and ``jno.nn``. Public: the module's
  ``__all__`` when it has one, else the names not starting with ``_`` that the module defines
  (``def``, ``class``, assignments) or imports from jno itself. A name is documented by a
  mkdocstrings directive ``::: path`` whose object is the name's object (``::: jno.core`` or
  ``::: jno.crux.core`` for ``jno.core``), or by an entry of the explicit ``members:`` list of
  such a directive (``::: jno.metrics`` with ``members: [rmse, ...]``). Lists are explicit on
  purpose: a new public name fails this test until a page lists it.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import re
from pathlib import Path

import pytest

import jno  # noqa: F401  (imported at collection, like the other test files)

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MODULES = ["jno", "jno.bayesian", "jno.inference", "jno.metrics", "jno.plot", "jno.nn"]
# ``jno.domain`` is the callable that builds a Domain and also the package whose docstring
# documents that call: its directive renders the package on purpose.
PACKAGE_PAGES = {"jno.domain"}


def nav_pages() -> list[str]:
    """The files of the ``nav:`` section of mkdocs.yml (``- Title: path`` or ``- path``)."""
    text = (ROOT / "mkdocs.yml").read_text()
    nav = text[text.index("\nnav:") :]
    return re.findall(r"^\s*-\s+(?:[^\n]*?:\s+)?\"?([\w./-]+\.(?:md|py))\"?\s*$", nav, re.M)


def directives() -> list[tuple[str, list[str]]]:
    """``(path, explicit members)`` for every ``::: path`` of the API pages."""
    found = []
    for page in sorted((DOCS / "api").glob("*.md")):
        lines = page.read_text().splitlines()
        for i, line in enumerate(lines):
            match = re.match(r"^:::\s+(\S+)\s*$", line)
            if not match:
                continue
            block = []
            for option in lines[i + 1 :]:
                if option.strip() and not option.startswith(" "):
                    break
                block.append(option)
            found.append((match.group(1), members_of(block)))
    return found


def members_of(block: list[str]) -> list[str]:
    """The entries of a ``members:`` list in a directive's YAML options (none for ``false``)."""
    members, indent = [], None
    for line in block:
        if indent is None:
            match = re.match(r"^(\s*)members:\s*$", line)
            if match:
                indent = len(match.group(1))
            continue
        item = re.match(r"^(\s*)-\s+(\w+)\s*$", line)
        if not item or len(item.group(1)) < indent:
            break
        members.append(item.group(2))
    return members


def resolve(path: str):
    """The object a dotted path names, as a user reaches it: attributes first, then submodules,
    then the attribute of the module of that name (``jno.domain`` is a callable, ``jno.domain.Ball``
    a class of the package ``jno.domain``)."""
    parts = path.split(".")
    obj = importlib.import_module(parts[0])
    for i in range(1, len(parts)):
        if hasattr(obj, parts[i]):
            obj = getattr(obj, parts[i])
            continue
        parent = ".".join(parts[:i])
        try:
            obj = importlib.import_module(f"{parent}.{parts[i]}")
        except ModuleNotFoundError:
            obj = getattr(importlib.import_module(parent), parts[i])
    return obj


def is_submodule(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # the parent is a module, not a package
        return False


def public_names(module) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is not None:
        return list(names)
    tree = ast.parse(Path(module.__file__).read_text())
    found = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            found.append(node.name)
        elif isinstance(node, ast.Assign):
            found += [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            found.append(node.target.id)
        elif isinstance(node, ast.ImportFrom) and (
            node.level > 0 or (node.module or "").split(".")[0] == "jno"
        ):
            found += [alias.asname or alias.name for alias in node.names]
    return [name for name in found if not name.startswith("_")]


def documented() -> tuple[set[str], list]:
    """The documented dotted paths and the objects they resolve to."""
    paths = set()
    for path, members in directives():
        paths.add(path)
        paths.update(f"{path}.{member}" for member in members)
    return paths, [resolve(p) for p in sorted(paths)]


def test_nav_pages_exist_and_every_page_is_in_the_nav():
    nav = nav_pages()
    assert len(nav) > 40, nav
    missing = [page for page in nav if not (DOCS / page).exists()]
    assert missing == [], f"pages in the nav of mkdocs.yml that do not exist: {missing}"
    assert len(set(nav)) == len(nav), "a page is listed twice in the nav"
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert sorted(pages - set(nav)) == [], "Markdown pages under docs/ missing from the nav"


def test_every_tutorial_is_rendered():
    nav = set(nav_pages())
    for script in sorted((ROOT / "tutorials").glob("*.py")):
        link = DOCS / "tutorials" / script.name
        assert link.is_symlink(), f"{link.relative_to(ROOT)}: add a symlink to {script.name}"
        assert link.resolve() == script.resolve(), f"{link} points elsewhere"
        assert f"tutorials/{script.name}" in nav, f"tutorials/{script.name} is not in the nav"


def test_directives_resolve():
    """Every directive names an object. A name that is both an attribute and a submodule
    (``jno.nn.mlp``, the function and the module) is rendered by mkdocstrings as the submodule,
    so the function needs the path of its module (``::: jno.nn.mlp.mlp``)."""
    shadowed = []
    for path, members in directives():
        for name in [path, *(f"{path}.{member}" for member in members)]:
            obj = resolve(name)
            if not inspect.ismodule(obj) and is_submodule(name) and name not in PACKAGE_PAGES:
                shadowed.append(name)
    assert shadowed == [], f"members shadowed by a submodule of the same name: {shadowed}"


@pytest.mark.parametrize("name", MODULES)
def test_every_public_name_is_documented(name):
    module = importlib.import_module(name)
    paths, objects = documented()
    names = public_names(module)
    assert names, f"{name}: no public names found"
    undocumented = [
        attr
        for attr in names
        if f"{name}.{attr}" not in paths
        and not any(obj is getattr(module, attr) for obj in objects)
    ]
    assert undocumented == [], (
        f"public names of {name} missing from docs/api/*.md (add a `::: path` directive or a "
        f"`members:` entry): {undocumented}"
    )


def test_the_check_sees_a_missing_name(monkeypatch):
    """A name added to ``__all__`` without a page entry is reported."""
    import jno.inference

    monkeypatch.setattr(jno.inference, "__all__", [*jno.inference.__all__, "not_documented"])
    monkeypatch.setattr(jno.inference, "not_documented", lambda: None, raising=False)
    with pytest.raises(AssertionError, match="not_documented"):
        test_every_public_name_is_documented("jno.inference")


def test_public_names_without_all():
    """``jno.metrics`` has no ``__all__``: its own definitions count, its imports do not."""
    import jno.metrics

    names = public_names(jno.metrics)
    assert {"rmse", "summary", "CalibrationCurve", "DEFAULT_LEVELS"} <= set(names)
    assert not {"jax", "jnp", "np", "logsumexp", "norm", "NamedTuple"} & set(names)
