"""Response headers from a :class:`~rust_py_rate_limit.Decision`.

Styles:

- ``"x-ratelimit"`` (default): ``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and
  ``X-RateLimit-Reset`` (seconds until the key's count is back to full);
- ``"ietf"``: the IETF httpapi draft (-11) fields
  ``RateLimit-Policy: "<name>";q=<limit>;w=<window>`` and
  ``RateLimit: "<name>";r=<remaining>;t=<seconds>``;
- ``"both"``: all of the above;
- ``None``: none of them.

Whatever the style, a refused request carries ``Retry-After`` (whole seconds, at least 1).
"""

from __future__ import annotations

import math
from typing import Literal

from ._core import Decision

__all__ = [
    "HEADER_STYLES",
    "HeaderStyle",
    "HeaderWriter",
    "check_style",
    "rate_limit_headers",
    "retry_after_seconds",
]

HeaderStyle = Literal["x-ratelimit", "ietf", "both"] | None

#: Every accepted value of a ``headers=`` setting.
HEADER_STYLES: tuple[HeaderStyle, ...] = ("x-ratelimit", "ietf", "both", None)


def _whole_seconds(seconds: float) -> int:
    return math.ceil(seconds) if math.isfinite(seconds) else 0


def check_style(style: object) -> HeaderStyle:
    """``style`` if it is a header style, else a ValueError naming it."""
    if style not in HEADER_STYLES:
        raise ValueError(
            f"`headers` must be one of 'x-ratelimit', 'ietf', 'both' or None, not {style!r}"
        )
    return style


def _policy_name(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(f"a policy name must be a str, not {type(name).__name__}")
    if not name or not all(" " <= c <= "~" for c in name):
        raise ValueError(f"a policy name must be printable ASCII and not empty, not {name!r}")
    return name.replace("\\", "\\\\").replace('"', '\\"')


class HeaderWriter:
    """Writes the headers of one style for a limiter's decisions.

    ``rates`` are the limiter's ``(limit, window_seconds)`` pairs (``RateLimiter.rates``); they
    give the ``w=`` of the IETF policy. ``name`` names the policy in the IETF fields.
    """

    __slots__ = ("_first_window", "_quoted", "_windows", "style")

    def __init__(
        self,
        style: HeaderStyle = "x-ratelimit",
        *,
        rates: list[tuple[int, int | float]] | None = None,
        name: str = "default",
    ) -> None:
        self.style = check_style(style)
        self._quoted = _policy_name(name)
        # limit -> window of the rate with that limit, the most restrictive rate first. A bucket
        # reports its burst as the limit; that decision takes the most restrictive rate's window.
        self._windows: dict[int, int] = {}
        for limit, window in sorted(rates or [], key=lambda r: r[1] / r[0]):
            self._windows.setdefault(limit, _whole_seconds(window))
        self._first_window = next(iter(self._windows.values()), None)

    def headers(self, decision: Decision) -> list[tuple[str, str]]:
        """The headers for ``decision``, ``Retry-After`` included when it was refused."""
        out: list[tuple[str, str]] = []
        style = self.style
        reset = _whole_seconds(decision.reset_after)
        window = self._windows.get(decision.limit, self._first_window)
        if style == "x-ratelimit" or style == "both":
            out.append(("X-RateLimit-Limit", str(decision.limit)))
            out.append(("X-RateLimit-Remaining", str(decision.remaining)))
            out.append(("X-RateLimit-Reset", str(reset)))
        if style == "ietf" or style == "both":
            policy = f'"{self._quoted}";q={decision.limit}'
            out.append(("RateLimit-Policy", policy if window is None else f"{policy};w={window}"))
            out.append(("RateLimit", f'"{self._quoted}";r={decision.remaining};t={reset}'))
        if not decision.allowed:
            out.append(("Retry-After", str(retry_after_seconds(decision, window))))
        return out


def retry_after_seconds(decision: Decision, window: float | None = None) -> int:
    """``Retry-After`` for a refused ``decision``: whole seconds, at least 1.

    A request that can never be admitted (its cost is above the capacity, ``retry_after`` is
    infinite) is told to wait a whole ``window`` (or until the key's count resets, when no
    window is known): there is no time after which it passes.
    """
    retry = decision.retry_after
    if not math.isfinite(retry):
        retry = window if window is not None else decision.reset_after
    return max(1, _whole_seconds(retry))


def rate_limit_headers(
    decision: Decision,
    style: HeaderStyle = "x-ratelimit",
    *,
    rates: list[tuple[int, int | float]] | None = None,
    name: str = "default",
) -> list[tuple[str, str]]:
    """The headers of ``style`` for ``decision`` (see :class:`HeaderWriter`)."""
    return HeaderWriter(style, rates=rates, name=name).headers(decision)
