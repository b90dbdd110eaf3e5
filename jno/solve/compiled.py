"""The compile cache of a solve: functions compiled once per engine, by name."""

from __future__ import annotations

from collections import Counter

import jax


class CompiledFunctions:
    """``name -> compiled function``, emptied when the engine changes."""

    def __init__(self):
        #: how many times each compiled function was traced (``"chunk..."``, ``"adapt"``,
        #: ``"init"``, ...): new data through ``crux.condition`` adds none
        self.traces: Counter = Counter()
        self.functions: dict = {}

    def clear(self) -> None:
        self.functions = {}

    def jit(self, name: str, fn, **static):
        """``fn`` compiled once under ``name``; ``static``: keyword arguments fixed at
        compile time (part of what ``name`` must say)."""
        if name not in self.functions:

            def traced(*args, **kw):
                self.traces[name] += 1
                return fn(*args, **kw)

            self.functions[name] = jax.jit(traced, static_argnames=tuple(static))
        compiled = self.functions[name]
        return lambda *args: compiled(*args, **static)
