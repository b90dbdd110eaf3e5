"""Solving: model grouping, the compiled step, chunked loops and the history."""
