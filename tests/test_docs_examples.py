"""Every Python example of the documentation site (``docs/**/*.md``) runs as written.

Each page is read top to bottom as a reader would: its ``python`` blocks run in order in one
namespace of the page's own, so a later example may use the names an earlier one defined. A
block that names ``redis://127.0.0.1:6379`` runs against the session's real Redis server (the
test fails, never skips, without one). Blocks in other languages (bash, text, toml) are not run.
"""

from __future__ import annotations

import re
from pathlib import Path

import django_support  # noqa: F401  (Django set up for the tests before a page would set it up)
import pytest
from conftest import CHECKOUT

DOCS = CHECKOUT / "docs"
#: The address the pages use for Redis; replaced by the session server's.
REDIS_URL = "redis://127.0.0.1:6379"
_BLOCK = re.compile(r"^( *)```python[^\n]*\n(.*?)^\1```", re.S | re.M)


def blocks(page: Path) -> list[str]:
    """The page's ``python`` blocks, dedented (a block may sit in a list or an admonition)."""
    found = []
    for indent, body in _BLOCK.findall(page.read_text()):
        lines = body.splitlines(keepends=True)
        found.append("".join(line[len(indent) :] for line in lines))
    return found


PAGES = sorted(page for page in DOCS.rglob("*.md") if blocks(page))
EXAMPLES = [(page, index) for page in PAGES for index in range(len(blocks(page)))]


def test_the_site_has_python_examples() -> None:
    assert len(EXAMPLES) >= 10


@pytest.mark.parametrize(
    ("page", "index"),
    EXAMPLES,
    ids=[f"{page.relative_to(DOCS)}:{index}" for page, index in EXAMPLES],
)
def test_docs_example_runs(page: Path, index: int, request: pytest.FixtureRequest) -> None:
    page_blocks = blocks(page)
    source = page_blocks[: index + 1]
    if any(REDIS_URL in block for block in source):
        server = request.getfixturevalue("redis_server")
        if server.process is None:  # a fault test killed it
            server.start()
        source = [block.replace(REDIS_URL, f"redis://127.0.0.1:{server.port}") for block in source]
    namespace: dict[str, object] = {"__name__": f"docs_example_{page.stem}_{index}"}
    name = page.relative_to(CHECKOUT)
    for position, block in enumerate(source):
        exec(compile(block, f"{name} example {position}", "exec"), namespace)
