"""First and second run of a script with jno's persistent compilation cache (issue 23).

Each script runs twice as a fresh process on an empty cache folder (the second run loads the
programs the first compiled), then once more with the cache off
(``JNO_COMPILATION_CACHE=0``) as the baseline; wall time of each process, and the ratio.

Run: python benchmarks/rerun_cache.py [-- script.py ...]   (default: python -m jno)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time


def wall(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def main(scripts: list[str]) -> None:
    print("| command | cache off s | first run s | second run s | first / second |")
    print("|---|---|---|---|---|")
    for script in scripts:
        cmd = [sys.executable, "-m", "jno"] if script == "-m jno" else [sys.executable, script]
        with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as out:
            env = {**os.environ, "MPLBACKEND": "Agg", "JNO_OUTPUT_DIR": out}
            off = wall(cmd, {**env, "JNO_COMPILATION_CACHE": "0"})
            first = wall(cmd, {**env, "JNO_COMPILATION_CACHE": cache})
            second = wall(cmd, {**env, "JNO_COMPILATION_CACHE": cache})
        name = "python " + (script if script == "-m jno" else script)
        print(f"| `{name}` | {off:.1f} | {first:.1f} | {second:.1f} | {first / second:.2f} |")


if __name__ == "__main__":
    main(sys.argv[1:] or ["-m jno"])
