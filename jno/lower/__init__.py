"""Lowering: the symbolic graph becomes pure JAX functions of (params, inputs)."""
