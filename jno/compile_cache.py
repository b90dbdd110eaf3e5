"""JAX's persistent compilation cache, switched on for jno's users.

Most of a first solve's time is XLA compilation (the README's first command: three quarters
of an 8 s solve), and a re-run of the same script compiles the same programs again. JAX can
keep compiled programs on disk, keyed by the program, the compile options, the XLA flags and
the jax/jaxlib versions, so a re-run loads them instead. ``import jno`` turns that on:

* folder: ``$JNO_COMPILATION_CACHE`` if it names one, else ``$XDG_CACHE_HOME/jno/xla``
  (default ``~/.cache/jno/xla``), in a subfolder named by this machine's CPU
  (:func:`host_tag`): JAX's cache key names the platform ("cpu") but not the instruction set,
  so a home folder shared by nodes of different CPUs would otherwise hand one node programs
  compiled for another's;
* bounded to :data:`MAX_BYTES` (least recently used programs are evicted first); programs
  that compile in less than :data:`MIN_COMPILE_SECONDS` are not stored;
* off with ``JNO_COMPILATION_CACHE=0`` (before ``import jno``) or ``jno.config(
  compilation_cache=False)``; moved with ``jno.config(compilation_cache="/some/folder")``;
* left alone when the user configured JAX's cache already (``JAX_COMPILATION_CACHE_DIR`` or
  ``jax.config.update("jax_compilation_cache_dir", ...)`` before ``import jno``);
* a folder that cannot be written is a warning, never an error (the solve just compiles).

Clear it by deleting the folder (:func:`cache_dir` says which).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import platform
import tempfile
import warnings
from pathlib import Path

import jax

ENV = "JNO_COMPILATION_CACHE"
MAX_BYTES = 2 * 1024**3
MIN_COMPILE_SECONDS = 0.5
_OFF = {"0", "false", "off", "no"}


def default_dir() -> Path:
    """``$XDG_CACHE_HOME/jno/xla`` (``~/.cache/jno/xla`` without it)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "jno" / "xla"


def host_tag() -> str:
    """A short name of this machine's CPU: its architecture and instruction-set flags."""
    text = platform.machine() + platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            text += next((line for line in f if line.startswith(("flags", "Features"))), "")
    except OSError:
        pass
    return f"{platform.machine() or 'cpu'}-{hashlib.sha1(text.encode()).hexdigest()[:10]}"


def cache_dir() -> Path | None:
    """The folder JAX's persistent cache uses now (``None``: off)."""
    if not jax.config.jax_enable_compilation_cache:
        return None
    path = jax.config.jax_compilation_cache_dir
    return None if path is None else Path(path)


def enable(path: str | os.PathLike | None = None) -> Path | None:
    """Keep compiled programs under ``path`` (default :func:`default_dir`), in this CPU's
    subfolder (:func:`host_tag`); returns the folder, or ``None`` with a warning when it
    cannot be written."""
    folder = (Path(path) if path is not None else default_dir()) / host_tag()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            pass
    except OSError as err:
        warnings.warn(
            f"jno: the compilation cache folder {folder} cannot be written ({err}); programs "
            f"are compiled afresh each run. Set {ENV}=<writable folder> or {ENV}=0.",
            stacklevel=2,
        )
        return None
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_compilation_cache_dir", str(folder))
    if importlib.util.find_spec("filelock") is not None:  # JAX needs it for the bound
        jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    _reset()
    return folder


def disable() -> None:
    """Compile every program afresh (nothing read from or written to disk)."""
    jax.config.update("jax_enable_compilation_cache", False)
    _reset()


def _reset() -> None:
    """Let JAX re-read the settings at its next compilation."""
    from jax.experimental.compilation_cache import compilation_cache

    compilation_cache.reset_cache()


def configure_at_import() -> None:
    """``import jno``'s default (see the module docstring)."""
    setting = os.environ.get(ENV, "").strip()
    if setting.lower() in _OFF:
        return
    if jax.config.jax_compilation_cache_dir is not None or os.environ.get(
        "JAX_COMPILATION_CACHE_DIR"
    ):
        return  # the user's own JAX cache
    enable(setting or None)


def config(*, compilation_cache: bool | str | os.PathLike | None = None) -> None:
    """jno's process-wide settings.

    Args:
        compilation_cache: ``False`` turns JAX's persistent compilation cache off, ``True``
            turns it on in the default folder, a path moves it there; ``None`` leaves it.
    """
    if compilation_cache is None:
        return
    if compilation_cache is False:
        disable()
    elif compilation_cache is True:
        enable()
    elif isinstance(compilation_cache, (str, os.PathLike)):
        enable(compilation_cache)
    else:
        raise TypeError(
            "jno.config(compilation_cache=...): pass True, False or a folder path, got "
            f"{type(compilation_cache).__name__}"
        )
