"""The README's table of contents stays true as sections come and go.

The table sits between ``<!-- toc -->`` and ``<!-- /toc -->`` near the top. Every ``##`` section
must have an entry, every entry must point at a heading, in the order of the document, and every
in-page link (``[...](#anchor)``) anywhere in the README must reach a heading. Anchors follow
GitHub's rules: the heading's text, lowercased, without punctuation, spaces made hyphens, and
``-1``, ``-2``... appended to repeats.
"""

from __future__ import annotations

import re

import pytest
from conftest import CHECKOUT

README = (CHECKOUT / "README.md").read_text()

TOC_START, TOC_END = "<!-- toc -->", "<!-- /toc -->"
HEADING = re.compile(r"^(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
FENCE = re.compile(r"^[ ]{0,3}(```|~~~)")
LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
IN_PAGE_LINK = re.compile(r"\]\(#([^)\s]*)\)")
HTML_TAG = re.compile(r"<[^>]+>")
NOT_IN_ANCHOR = re.compile(r"[^\w\- ]")


def prose_lines(markdown: str) -> list[tuple[int, str]]:
    """(line number, line) for every line outside fenced code blocks."""
    lines, fence = [], None
    for number, line in enumerate(markdown.splitlines(), start=1):
        opening = FENCE.match(line)
        if fence is None and opening:
            fence = opening.group(1)
        elif fence is not None and line.strip().startswith(fence):
            fence = None
        elif fence is None:
            lines.append((number, line))
    return lines


def anchor_text(heading: str) -> str:
    """A heading's anchor before repeats are numbered, by GitHub's rules."""
    text = HTML_TAG.sub("", LINK.sub(r"\1", heading))
    return NOT_IN_ANCHOR.sub("", text.strip().lower()).replace(" ", "-")


def headings(markdown: str) -> list[tuple[int, int, str, str]]:
    """(line number, level, text, anchor) of every heading, in order."""
    seen: dict[str, int] = {}
    found = []
    for number, line in prose_lines(markdown):
        match = HEADING.match(line)
        if not match:
            continue
        base = anchor = anchor_text(match.group(2))
        while anchor in seen:  # GitHub numbers repeats: notes, notes-1, notes-2
            seen[base] += 1
            anchor = f"{base}-{seen[base]}"
        seen[anchor] = 0
        found.append((number, len(match.group(1)), match.group(2), anchor))
    return found


def toc_anchors(markdown: str) -> list[str]:
    start, end = markdown.index(TOC_START), markdown.index(TOC_END)
    return IN_PAGE_LINK.findall(markdown[start:end])


def toc_problems(markdown: str) -> list[str]:
    """Everything that makes the table of contents untrue; empty when it is true."""
    if markdown.count(TOC_START) != 1 or markdown.count(TOC_END) != 1:
        return [f"the README needs exactly one {TOC_START} ... {TOC_END} block"]
    found = headings(markdown)
    anchors = {anchor: number for number, _, _, anchor in found}
    listed = toc_anchors(markdown)
    problems = [
        f"`## {text}` (line {number}) has no entry [..](#{anchor}) in the table of contents"
        for number, level, text, anchor in found
        if level == 2 and anchor not in listed
    ]
    problems += [
        f"table of contents: #{a} is no heading's anchor" for a in listed if a not in anchors
    ]
    order = [anchors[a] for a in listed if a in anchors]
    if order != sorted(order):
        problems.append("the table of contents is not in the order of the document")
    first_section = min((n for n, level, _, _ in found if level == 2), default=0)
    toc_line = markdown[: markdown.index(TOC_START)].count("\n") + 1
    if first_section and toc_line > first_section:
        problems.append("the table of contents must come before the first `##` section")
    for number, line in prose_lines(markdown):
        problems += [
            f"line {number}: link to #{a}, which is no heading's anchor"
            for a in IN_PAGE_LINK.findall(line)
            if a not in anchors
        ]
    return problems


def test_the_readme_table_of_contents_is_true() -> None:
    assert toc_problems(README) == []


def test_the_table_lists_every_section() -> None:
    sections = [anchor for _, level, _, anchor in headings(README) if level == 2]
    assert len(sections) >= 10
    assert [a for a in toc_anchors(README) if a in sections] == sections


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("Redis, Redis Cluster and Valkey", "redis-redis-cluster-and-valkey"),
        ("Install and run the quick start", "install-and-run-the-quick-start"),
        (
            '`RateLimit(rate_or_limiter, *, key="ip", **settings)`: a dependency',
            "ratelimitrate_or_limiter--keyip-settings-a-dependency",
        ),
        ("Application factory and `app.config`", "application-factory-and-appconfig"),
        ("See [the docs](docs/DESIGN.md) <sup>new</sup>", "see-the-docs-new"),
    ],
)
def test_anchors_follow_githubs_rules(heading: str, anchor: str) -> None:
    assert anchor_text(heading) == anchor


def test_repeated_headings_are_numbered_and_code_blocks_are_not_headings() -> None:
    text = "## Notes\n\n```text\n# settings.py\n## Notes\n```\n\n### Notes\n\n## Notes ##\n"
    assert [(level, a) for _, level, _, a in headings(text)] == [
        (2, "notes"),
        (3, "notes-1"),
        (2, "notes-2"),
    ]


def _with_new_section(markdown: str) -> str:
    return markdown.replace("\n## License\n", "\n## Security\n\nText.\n\n## License\n", 1)


def test_a_section_left_out_of_the_table_is_reported() -> None:
    added = _with_new_section(README)
    line = added.splitlines().index("## Security") + 1
    assert toc_problems(added) == [
        f"`## Security` (line {line}) has no entry [..](#security) in the table of contents"
    ]


def test_a_renamed_section_and_a_dangling_link_are_reported() -> None:
    renamed = README.replace("\n## Which algorithm\n", "\n## Choosing an algorithm\n", 1)
    problems = toc_problems(renamed)
    assert "table of contents: #which-algorithm is no heading's anchor" in problems
    assert any(p.startswith("`## Choosing an algorithm`") for p in problems)
    dangling = README.replace("](#benchmarks)", "](#benchmark)", 1)
    assert any("link to #benchmark," in p for p in toc_problems(dangling))


def test_a_table_out_of_order_is_reported() -> None:
    first, second = "- [Django](#django)\n", "- [Flask](#flask)\n"
    swapped = README.replace(first + second, second + first, 1)
    assert swapped != README
    assert toc_problems(swapped) == ["the table of contents is not in the order of the document"]
