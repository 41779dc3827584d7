"""Callables a user hands the integrations (key functions, refusal builders), checked where the
app is configured: one that cannot take the arguments it will be called with is a TypeError
naming the setting then, not a 500 at the first request."""

from __future__ import annotations

import inspect
from typing import Any

__all__ = ["check_arity"]


def check_arity(func: Any, arguments: int, setting: str, call: str) -> None:
    """A TypeError naming ``setting`` unless ``func`` can be called with ``arguments``
    positional arguments (``call`` shows how, for the message). A callable whose signature
    cannot be read (some builtins) passes: it is called as it is."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(*([None] * arguments))
    except TypeError:
        name = getattr(func, "__qualname__", type(func).__name__)
        message = f"{setting} is called as {call}, which {name}{signature} cannot take"
        raise TypeError(message) from None
