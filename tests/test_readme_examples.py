"""README's runnable examples, executed as written; a shape comment that lies fails.

Every ```python block of README.md that starts with an import is a complete program. Each line
``name = ...  # (d0, d1, ...)`` is followed, before execution, by an assertion that ``name``
has that shape, so the comments are checked, not trusted.
"""

import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
SHAPE_COMMENT = re.compile(r"^(\w+) = .*#\s*(\(\d+(?:,\s*\d+)*,?\))\s*$")


def runnable_blocks() -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    return [b for b in blocks if b.startswith("import ")]


def with_shape_checks(code: str) -> tuple[str, int]:
    out, checks = [], 0
    for number, line in enumerate(code.splitlines(), 1):
        out.append(line)
        m = SHAPE_COMMENT.match(line)
        if m:
            name, shape = m.groups()
            out.append(
                f"assert tuple(np.shape({name})) == {shape}, "
                f"f'README line {number}: {name} has shape {{np.shape({name})}}, comment says {shape}'"
            )
            checks += 1
    return "\n".join(out), checks


def test_readme_has_runnable_examples():
    assert len(runnable_blocks()) >= 2


@pytest.mark.parametrize("index", range(len(runnable_blocks())))
def test_readme_example_runs_and_its_shape_comments_hold(index):
    code, checks = with_shape_checks(runnable_blocks()[index])
    namespace = {"np": np}
    exec(compile(code, f"README.md block {index}", "exec"), namespace)
    if index == 0:  # the front-page example states the chain and pushforward shapes
        assert checks >= 2
        assert isinstance(namespace["u"], np.ndarray)


def test_a_lying_shape_comment_fails():
    code, checks = with_shape_checks("import numpy as np\nu = np.zeros((2, 3))  # (3, 2)\n")
    assert checks == 1
    with pytest.raises(AssertionError, match="comment says"):
        exec(code, {"np": np})
