"""The persistent compilation cache ``import jno`` turns on: its folder, its switches, and a
second process that loads what the first compiled instead of compiling it again. Each case
runs in a fresh interpreter (the setting is process-wide)."""

import json
import os
import subprocess
import sys

import pytest

PROBE = """
import json, os, warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    import jax
    {before}
    import jno
    {after}
events = []
jax.monitoring.register_event_duration_secs_listener(
    lambda name, *_, **__: events.append(name))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.jit(lambda x: jax.numpy.sin(x) * 2.0 + 1.0)(jax.numpy.arange(7.0)).block_until_ready()
print(json.dumps({{
    "dir": jno.compile_cache.cache_dir() and str(jno.compile_cache.cache_dir()),
    "tag": jno.compile_cache.host_tag(),
    "compiled": events.count("/jax/core/compile/backend_compile_duration"),  # requests
    "loaded": events.count("/jax/compilation_cache/cache_retrieval_time_sec"),
    "warnings": [str(w.message) for w in caught if "compilation cache" in str(w.message)],
}}))
"""


def probe(tmp_path, env=None, before="", after=""):
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("JNO_COMP", "JAX_COMP"))}
    environ.update({"XDG_CACHE_HOME": str(tmp_path / "xdg"), **(env or {})})
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(before=before, after=after)],
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_on_by_default_and_a_second_process_loads_instead_of_compiling(tmp_path):
    first = probe(tmp_path)
    assert first["dir"] == str(tmp_path / "xdg" / "jno" / "xla" / first["tag"])
    assert first["compiled"] >= 1 and first["loaded"] == 0
    assert any((tmp_path / "xdg" / "jno" / "xla" / first["tag"]).iterdir())
    second = probe(tmp_path)
    # every program the first process stored, the second loads (JAX reports a compile
    # request either way: "compiled" counts requests, "loaded" the cache's answers)
    assert second["loaded"] == first["compiled"] == second["compiled"]


@pytest.mark.parametrize("value", ["0", "off"])
def test_the_environment_variable_turns_it_off(tmp_path, value):
    got = probe(tmp_path, {"JNO_COMPILATION_CACHE": value})
    assert got["dir"] is None and got["loaded"] == 0
    assert not (tmp_path / "xdg" / "jno").exists()


@pytest.mark.slow
def test_a_folder_moves_it_and_the_users_own_jax_cache_is_left_alone(tmp_path):
    moved = probe(tmp_path, {"JNO_COMPILATION_CACHE": str(tmp_path / "mine")})
    assert moved["dir"] == str(tmp_path / "mine" / moved["tag"])
    own = probe(tmp_path, {"JAX_COMPILATION_CACHE_DIR": str(tmp_path / "jax")})
    assert own["dir"] == str(tmp_path / "jax")
    configured = probe(
        tmp_path, before=f'jax.config.update("jax_compilation_cache_dir", "{tmp_path / "c"}")'
    )
    assert configured["dir"] == str(tmp_path / "c")


@pytest.mark.slow
def test_jno_config_switches_it_off_and_moves_it(tmp_path):
    off = probe(tmp_path, after="jno.config(compilation_cache=False)")
    assert off["dir"] is None and off["loaded"] == 0
    moved = probe(tmp_path, after=f'jno.config(compilation_cache="{tmp_path / "b"}")')
    assert moved["dir"] == str(tmp_path / "b" / moved["tag"])
    assert any((tmp_path / "b" / moved["tag"]).iterdir())


@pytest.mark.slow
def test_an_unwritable_folder_is_a_warning_not_an_error(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    got = probe(tmp_path, {"JNO_COMPILATION_CACHE": str(blocked / "xla")})
    assert got["dir"] is None and got["compiled"] >= 1
    assert len(got["warnings"]) == 1 and "cannot be written" in got["warnings"][0]
