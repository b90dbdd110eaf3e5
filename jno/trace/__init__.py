"""The symbolic graph (no JAX computation happens here)."""
