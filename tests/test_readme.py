"""Every Python example in the README runs as written."""

from __future__ import annotations

import re

import pytest
from conftest import CHECKOUT

BLOCKS = re.findall(r"```python\n(.*?)```", (CHECKOUT / "README.md").read_text(), re.S)


def test_the_readme_has_python_examples() -> None:
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index: int) -> None:
    namespace: dict[str, object] = {"__name__": f"readme_example_{index}"}
    # Later examples build on the names earlier ones define, as a reader would.
    for block in BLOCKS[:index]:
        exec(compile(block, f"README.md example {BLOCKS.index(block)}", "exec"), namespace)
    exec(compile(BLOCKS[index], f"README.md example {index}", "exec"), namespace)
