"""A Griffe extension for the API reference (docs/reference/api.md): the package's docstrings
are written for Sphinx and its roles, which Markdown does not know.

``:class:`~rust_py_rate_limit.Decision``` would reach the page as the text ":class:" followed by
the code ``~rust_py_rate_limit.Decision``; this rewrites each role to a code span of the name
as Sphinx shows it (the last component after ``~``), and a paragraph's closing ``::`` (a
literal block follows) to ``:``. mkdocs.yml loads it (``extensions:``); it is not a page.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|func|meth|data|attr|exc|mod|obj|const):`(~?)([^`]+)`")
_LITERAL = re.compile(r"(\S)::$", re.M)
_LONE_LITERAL = re.compile(r"^(\s*)::$", re.M)


def markdown(docstring: str) -> str:
    """``docstring`` with its Sphinx roles and literal-block markers made Markdown."""

    def role(match: re.Match[str]) -> str:
        short, target = match.groups()
        return f"`{target.rsplit('.', 1)[-1] if short else target}`"

    text = _ROLE.sub(role, docstring)
    text = _LONE_LITERAL.sub("", text)
    return _LITERAL.sub(r"\1:", text)


class SphinxRoles(griffe.Extension):
    """Rewrites each loaded object's docstring with :func:`markdown`."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)
