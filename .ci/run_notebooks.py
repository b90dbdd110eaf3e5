"""Execute the tutorials as notebooks, top to bottom, at the small size: what CI runs.

    python .ci/run_notebooks.py                  # every tutorial
    python .ci/run_notebooks.py burgers sbc_poisson --size full --keep executed/

Each tutorial (a jupytext percent script, tutorials/*.py) is converted to a notebook in a
temporary folder and executed by nbmake (``pytest --nbmake``) in a fresh Jupyter kernel, with

* ``JNO_TUTORIAL_SIZE=small`` (``--size``): every cell runs, at a reduced size;
* ``JNO_OUTPUT_DIR=<folder>/outputs``: the saved figures go there;
* ``MPLBACKEND`` removed: the kernel then draws with its inline backend, as in Jupyter
  (ipykernel uses ``MPLBACKEND`` if it is set, so ``MPLBACKEND=Agg`` would hide the figures).

A notebook fails when a cell raises, when it runs longer than ``--timeout`` seconds (nbmake's
per-cell limit; the whole notebook is stopped 60 s later), or when it shows fewer inline
figures than it saves (every saved figure is also drawn below its cell). The script prints
one line per notebook with its wall time and exits with status 1 if any failed.
Needs the ``notebooks`` extra and the tutorials' own dependencies (matplotlib, numpyro,
arviz, h5netcdf: all in ``test``): ``pip install -e ".[test,notebooks]"``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"


def tutorials(names: list[str]) -> list[Path]:
    """The percent scripts in tutorials/, all or those named (``burgers`` or ``burgers.py``)."""
    found = sorted(
        p for p in TUTORIALS.glob("*.py") if "format_name: percent" in p.read_text(encoding="utf-8")
    )
    if not names:
        return found
    by_stem = {p.stem: p for p in found}
    unknown = [n for n in names if Path(n).stem not in by_stem]
    if unknown:
        raise SystemExit(f"no tutorial named {unknown}; choose from {sorted(by_stem)}")
    return [by_stem[Path(n).stem] for n in names]


def inline_images(notebook: Path) -> int:
    """The number of PNG images among the executed notebook's outputs."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    return sum(
        "image/png" in out.get("data", {})
        for cell in nb["cells"]
        if cell["cell_type"] == "code"
        for out in cell.get("outputs", [])
    )


def run(notebook: Path, env: dict, timeout: float) -> tuple[bool, float, str]:
    """Execute ``notebook`` in place with nbmake; ``(passed, seconds, output)``."""
    ini = notebook.parent / "pytest.ini"  # keeps pytest away from any project configuration
    ini.write_text("[pytest]\n")
    cmd = [
        sys.executable, "-m", "pytest", "--nbmake", f"--nbmake-timeout={int(timeout)}",
        "--overwrite", "-p", "no:cacheprovider", "-q", "-c", str(ini), str(notebook),
    ]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        cwd=notebook.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: a timeout ends the kernel too
    )
    try:
        output, _ = proc.communicate(timeout=timeout + 60)  # nbmake stops a cell at timeout
        passed = proc.returncode == 0
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        output += f"\nnotebook stopped after {timeout + 60:.0f} s\n"
        passed = False
    return passed, time.perf_counter() - t0, output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="tutorials to run (default: all)")
    parser.add_argument(
        "--size", choices=("small", "full"), default="small", help="JNO_TUTORIAL_SIZE (small)"
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds per notebook (default: 300)"
    )
    parser.add_argument(
        "--keep", type=Path, help="folder for the executed notebooks (default: a temporary one)"
    )
    args = parser.parse_args(argv)
    scripts = tutorials(args.names)

    import jupytext  # the notebooks extra; imported here so --help works without it

    with tempfile.TemporaryDirectory(prefix="jno-notebooks-") as tmp:
        folder = Path(args.keep or tmp).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, JNO_TUTORIAL_SIZE=args.size, JNO_OUTPUT_DIR=str(folder / "outputs"))
        env.pop("MPLBACKEND", None)
        print(f"{len(scripts)} notebooks at JNO_TUTORIAL_SIZE={args.size} in {folder}", flush=True)
        failed, total = [], time.perf_counter()
        for script in scripts:
            notebook = folder / f"{script.stem}.ipynb"
            jupytext.write(jupytext.read(script), notebook)
            passed, seconds, output = run(notebook, env, args.timeout)
            saved = len(re.findall(r"\.savefig\(", script.read_text(encoding="utf-8")))
            shown = inline_images(notebook) if passed else 0
            status = "passed"
            if not passed:
                status = "FAILED"
            elif shown < saved:
                status = f"FAILED: {shown} inline figures, {saved} saved"
            print(f"{script.name:32s} {seconds:6.1f} s  {shown} figures  {status}", flush=True)
            if status != "passed":
                failed.append(script.name)
                print(output, flush=True)
        total = time.perf_counter() - total
        verdict = f"FAILED: {', '.join(failed)}" if failed else "all passed"
        print(f"total {total:.1f} s; {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
