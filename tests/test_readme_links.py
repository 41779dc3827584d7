"""The README stays short and its links lead somewhere.

The README is the front page: what the library is, why, install, a quick start per framework,
the two commands, and links into the documentation site (``docs/``). Every relative link in it
must name a file of the checkout (a page of the site, an example), and it stays within
:data:`MAX_LINES` lines. The site's own links and anchors are checked by ``mkdocs build
--strict`` (``.ci/run``).
"""

from __future__ import annotations

import re
from pathlib import Path

from conftest import CHECKOUT

README = (CHECKOUT / "README.md").read_text()
#: The issue's "at most ~200 lines".
MAX_LINES = 200
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def broken_links(markdown: str, base: Path) -> list[str]:
    """The relative link targets of ``markdown`` (outside code blocks) that name no file under
    ``base``; in-page anchors must be given with a file (the README has no sections to jump
    to beyond a screen)."""
    broken = []
    for target in _LINK.findall(_FENCE.sub("", markdown)):
        if re.match(r"^[a-z]+:", target):  # https:, mailto:
            continue
        path = target.split("#", 1)[0]
        if not path or not (base / path).exists():
            broken.append(target)
    return broken


def test_the_readme_fits_on_a_few_screens() -> None:
    assert len(README.splitlines()) <= MAX_LINES


def test_every_relative_link_of_the_readme_names_a_file() -> None:
    assert broken_links(README, CHECKOUT) == []
    links = _LINK.findall(_FENCE.sub("", README))
    assert sum(link.startswith("docs/") for link in links) >= 10, "it links into the site"


def test_a_broken_link_is_found() -> None:
    assert broken_links("[x](docs/nowhere.md) [y](docs/index.md) [z](#top)", CHECKOUT) == [
        "docs/nowhere.md",
        "#top",
    ]
    assert broken_links("```\n[x](nowhere.md)\n```\n[w](https://example.org)", CHECKOUT) == []
