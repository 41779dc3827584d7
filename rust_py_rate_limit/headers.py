"""Response headers from a :class:`~rust_py_rate_limit.Decision`.

Styles:

- ``"x-ratelimit"`` (default): ``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and
  ``X-RateLimit-Reset`` (seconds until the key's count is back to full, or with
  ``reset="epoch"`` the Unix time it is, as flask-limiter, slowapi and GitHub send it);
- ``"ietf"``: the IETF httpapi draft (-11) fields
  ``RateLimit-Policy: "<name>";q=<limit>;w=<window>`` and
  ``RateLimit: "<name>";r=<remaining>;t=<seconds>``;
- ``"both"``: all of the above;
- ``None``: none of them.

Whatever the style, a refused request carries ``Retry-After`` (whole seconds, at least 1).
"""

from __future__ import annotations

import math
import time
from typing import Literal

from ._core import Decision

__all__ = [
    "FIELD_NAMES",
    "HEADER_STYLES",
    "RESET_FORMATS",
    "HeaderStyle",
    "HeaderWriter",
    "ResetFormat",
    "check_reset_format",
    "check_style",
    "rate_limit_headers",
    "retry_after_seconds",
]

HeaderStyle = Literal["x-ratelimit", "ietf", "both"] | None

#: Every accepted value of a ``headers=`` setting.
HEADER_STYLES: tuple[HeaderStyle, ...] = ("x-ratelimit", "ietf", "both", None)

#: ``X-RateLimit-Reset`` as seconds from now (``"delta"``) or as a Unix time (``"epoch"``).
ResetFormat = Literal["delta", "epoch"]

#: Every accepted value of a ``reset_format=`` setting.
RESET_FORMATS: tuple[ResetFormat, ...] = ("delta", "epoch")


def _whole_seconds(seconds: float) -> int:
    return math.ceil(seconds) if math.isfinite(seconds) else 0


def check_style(style: object) -> HeaderStyle:
    """``style`` if it is a header style, else a ValueError naming it."""
    if style not in HEADER_STYLES:
        raise ValueError(
            f"`headers` must be one of 'x-ratelimit', 'ietf', 'both' or None, not {style!r}"
        )
    return style


def check_reset_format(reset: object) -> ResetFormat:
    """``reset`` if it is a reset format, else a ValueError naming it."""
    if reset not in RESET_FORMATS:
        raise ValueError(f"`reset_format` must be 'delta' or 'epoch', not {reset!r}")
    return reset


def _policy_name(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(f"a policy name must be a str, not {type(name).__name__}")
    if not name or not all(" " <= c <= "~" for c in name):
        raise ValueError(f"a policy name must be printable ASCII and not empty, not {name!r}")
    return name.replace("\\", "\\\\").replace('"', '\\"')


#: The fields a writer may emit: wire names (lowercase, as ASGI wants them) and display names.
_FIELD_NAMES: dict[bytes, str] = {
    b"x-ratelimit-limit": "X-RateLimit-Limit",
    b"x-ratelimit-remaining": "X-RateLimit-Remaining",
    b"x-ratelimit-reset": "X-RateLimit-Reset",
    b"ratelimit-policy": "RateLimit-Policy",
    b"ratelimit": "RateLimit",
    b"retry-after": "Retry-After",
}

#: The lowercase names of every field a writer emits, for spotting them on a response.
FIELD_NAMES: frozenset[bytes] = frozenset(_FIELD_NAMES)

_INF = math.inf


class HeaderWriter:
    """Writes the headers of one style for a limiter's decisions.

    ``rates`` are the limiter's ``(limit, window_seconds)`` pairs (``RateLimiter.rates``); they
    give the ``w=`` of the IETF policy. ``name`` names the policy in the IETF fields. ``reset``
    is the form of ``X-RateLimit-Reset``: seconds from now (``"delta"``) or a Unix time
    (``"epoch"``); the IETF fields are always seconds from now, as the draft says.
    :meth:`headers` gives ``str`` pairs; :meth:`raw_headers` gives the same fields as ASGI wants
    them (lowercase ``bytes``), without the detour through ``str``.
    """

    __slots__ = (
        "_epoch",
        "_first_window",
        "_ietf",
        "_policies",
        "_quoted",
        "_windows",
        "_x",
        "style",
    )

    def __init__(
        self,
        style: HeaderStyle = "x-ratelimit",
        *,
        rates: list[tuple[int, int | float]] | None = None,
        name: str = "default",
        reset: ResetFormat = "delta",
    ) -> None:
        self.style = check_style(style)
        self._epoch = check_reset_format(reset) == "epoch"
        self._x = style in ("x-ratelimit", "both")
        self._ietf = style in ("ietf", "both")
        self._quoted = _policy_name(name).encode()
        # limit -> window of the rate with that limit, the most restrictive rate first. A bucket
        # reports its burst as the limit; that decision takes the most restrictive rate's window.
        self._windows: dict[int, int] = {}
        for limit, window in sorted(rates or [], key=lambda r: r[1] / r[0]):
            self._windows.setdefault(limit, _whole_seconds(window))
        self._first_window = next(iter(self._windows.values()), None)
        # limit -> its RateLimit-Policy item; limits come from the limiter, so few.
        self._policies: dict[int, bytes] = {}

    def _policy(self, limit: int) -> bytes:
        item = self._policies.get(limit)
        if item is None:
            window = self._windows.get(limit, self._first_window)
            item = b'"%s";q=%d' % (self._quoted, limit)
            if window is not None:
                item += b";w=%d" % window
            if len(self._policies) < 64:
                self._policies[limit] = item
        return item

    def raw_headers(self, decision: Decision) -> list[tuple[bytes, bytes]]:
        """The fields for ``decision`` as lowercase ``bytes`` pairs, ``Retry-After`` included
        when it was refused."""
        reset_after = decision.reset_after
        reset = math.ceil(reset_after) if reset_after < _INF else 0
        remaining = decision.remaining
        out: list[tuple[bytes, bytes]] = (
            [
                (b"x-ratelimit-limit", b"%d" % decision.limit),
                (b"x-ratelimit-remaining", b"%d" % remaining),
                (
                    b"x-ratelimit-reset",
                    b"%d" % (math.ceil(time.time() + reset) if self._epoch else reset),
                ),
            ]
            if self._x
            else []
        )
        if self._ietf:
            out.append((b"ratelimit-policy", self._policy(decision.limit)))
            out.append((b"ratelimit", b'"%s";r=%d;t=%d' % (self._quoted, remaining, reset)))
        if not decision.allowed:
            window = self._windows.get(decision.limit, self._first_window)
            out.append((b"retry-after", b"%d" % retry_after_seconds(decision, window)))
        return out

    def headers(self, decision: Decision) -> list[tuple[str, str]]:
        """The headers for ``decision``, ``Retry-After`` included when it was refused."""
        names = _FIELD_NAMES
        return [(names[name], value.decode()) for name, value in self.raw_headers(decision)]


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
    reset: ResetFormat = "delta",
) -> list[tuple[str, str]]:
    """The headers of ``style`` for ``decision`` (see :class:`HeaderWriter`)."""
    return HeaderWriter(style, rates=rates, name=name, reset=reset).headers(decision)
