"""jno's compile options change speed, never values; they can be switched off."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np

import jno


def test_jno_jit_gives_the_values_and_gradients_of_plain_jit():
    x = jax.random.normal(jax.random.PRNGKey(0), (1000, 1))

    def f(th, x):
        r = th[0] * jnp.sin(jnp.pi * x) + th[1] - 2.0 * x
        return jnp.sum(r**2)

    th = jnp.array([0.3, -0.2])
    for fn in (f, jax.grad(f)):
        np.testing.assert_allclose(jno.xla_defaults.jit(fn)(th, x), jax.jit(fn)(th, x),
                                   rtol=1e-5)


def test_options_are_probed_and_can_be_switched_off():
    options = jno.xla_defaults.compiler_options()
    assert options in ({}, jno.xla_defaults.OPTIONS)  # {} where jaxlib lacks the option
    code = "import jno; print(jno.xla_defaults.compiler_options())"
    env = {**os.environ, "JNO_XLA_DEFAULTS": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip().splitlines()[-1] == "{}"
