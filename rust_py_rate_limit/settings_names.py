"""Setting names as users write them (Flask's ``RATELIMIT_*`` config keys, the keys of Django's
``RUST_PY_RATE_LIMIT``): old names read under their new ones with a ``DeprecationWarning``, and
the error for an unknown name: the setting a peer library's name means, else a "did you mean"
only when the name is close to one of ours, else the list of settings.

Names are compared without their shared prefix (``RATELIMIT_``): with it, every name looks
alike and the closest match may be unrelated.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["renamed", "unknown_setting_message"]

#: How alike two names (past their prefix) must be for a "did you mean".
_CUTOFF = 0.8


def renamed(
    config: Mapping[str, Any],
    renames: Mapping[str, str],
    label: Callable[[str], str] = str,
    stacklevel: int = 3,
) -> dict[str, Any]:
    """``config`` with each deprecated name of ``renames`` (old -> new) read as its new name,
    with a ``DeprecationWarning``; a ValueError when both are given."""
    result = dict(config)
    for old, new in renames.items():
        if old in result:
            if new in result:
                current = label(new)
                raise ValueError(
                    f"{label(old)} is the old, deprecated name of {current}: give {current} only"
                )
            warnings.warn(
                f"{label(old)} is deprecated: the setting is {label(new)}",
                DeprecationWarning,
                stacklevel=stacklevel + 1,
            )
            result[new] = result.pop(old)
    return result


def _suggestion(name: str, known: Iterable[str], prefix: str) -> str | None:
    by_stem = {k[len(prefix) :] if k.startswith(prefix) else k: k for k in known}
    stem = name[len(prefix) :] if name.startswith(prefix) else name
    close = difflib.get_close_matches(stem.upper(), list(by_stem), n=1, cutoff=_CUTOFF)
    return by_stem[close[0]] if close else None


def unknown_setting_message(
    name: str,
    known: Iterable[str],
    where: str | None,
    *,
    prefix: str = "",
    peers: Mapping[str, str | None] | None = None,
    label: Callable[[str], str] = repr,
) -> str:
    """The message for the unknown setting ``name`` found in ``where``. ``peers`` maps a peer
    library's setting names to ours (None: no counterpart here); ``label`` writes a name as
    the user wrote it."""
    known = sorted(known)
    place = f" in {where}" if where else ""
    listing = "; the settings are " + ", ".join(known)
    if peers is not None and name in peers:
        ours = peers[name]
        if ours is None:
            return f"{label(name)}{place} is another library's setting, none like it{listing}"
        return f"unknown setting {label(name)}{place}: this library's name for it is {ours!r}"
    close = _suggestion(name, known, prefix)
    hint = f" (did you mean {close!r}?)" if close else ""
    return f"unknown setting {label(name)}{place}{hint}{listing}"
