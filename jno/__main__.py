"""``python -m jno [EXAMPLE] [options]``: run one of jno's examples (default: the headline).

``python -m jno --help`` lists the examples; ``python -m jno EXAMPLE --help`` shows one
example's options.
"""

from __future__ import annotations

import sys

from jno.examples import DEFAULT, EXAMPLES, load, summary


def usage() -> str:
    """The example list that ``--help`` prints."""
    width = max(len(name) for name in EXAMPLES)
    lines = [
        "usage: python -m jno [EXAMPLE] [options]",
        "",
        "Runnable examples; each prints a summary beside a known answer and saves a figure",
        "in --out (default: $JNO_OUTPUT_DIR or ./outputs):",
        "",
    ]
    lines += [f"  {name:<{width}}  {summary(name)}" for name in EXAMPLES]
    lines += [
        "",
        f"With no EXAMPLE, `{DEFAULT}` runs. `python -m jno EXAMPLE --help` shows its options.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    """Run the example named by ``argv[0]`` (default ``headline``) with the remaining options."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(usage())
        return {}
    name = DEFAULT
    if argv and not argv[0].startswith("-"):
        name = argv.pop(0)
        if name not in EXAMPLES:
            print(f"python -m jno: unknown example {name!r}\n\n{usage()}", file=sys.stderr)
            raise SystemExit(2)
    return load(name).main(argv)


if __name__ == "__main__":
    main()
