"""Runnable examples of ``python -m jno``: each solves a problem with a known answer, prints a
summary next to that answer and saves a figure.

``EXAMPLES`` maps the name given on the command line to the module that runs it; every module
has ``main(argv) -> dict`` (the numbers it printed) and a one-line docstring summary, which
``python -m jno --help`` lists.
"""

from __future__ import annotations

import importlib
from types import ModuleType

EXAMPLES: dict[str, str] = {
    "headline": "jno.examples.headline",
    "pinn": "jno.examples.bayesian_pinn",
    "ensemble": "jno.examples.ensemble",
    "long-run": "jno.examples.long_run",
}
DEFAULT = "headline"


def load(name: str) -> ModuleType:
    """The module of example ``name`` (a key of ``EXAMPLES``)."""
    if name not in EXAMPLES:
        raise ValueError(
            f"unknown example {name!r}: choose one of {', '.join(EXAMPLES)} "
            "(python -m jno --help lists them)"
        )
    return importlib.import_module(EXAMPLES[name])


def summary(name: str) -> str:
    """First line of example ``name``'s module docstring."""
    doc = load(name).__doc__ or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""
