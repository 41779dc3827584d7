"""``metrics_keys=``: how an exporter shows a client's key, which may be personal data (an IP
address, a user id); ``top=``: how many of a limiter's most refused keys it shows."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable
from typing import Literal

__all__ = ["MAX_TOP", "KeyLabels", "MetricsKeys", "top_setting"]

#: The most keys ``top=`` may ask for, a limiter (each is a series).
MAX_TOP = 1000

#: ``"plain"``: the key as it is; ``"hash"``: a keyed SHA-256 of it; ``"none"``: no key at all.
MetricsKeys = Literal["plain", "hash", "none"]

_CHOICES = ("plain", "hash", "none")

#: Hex digits of the digest shown (64 bits: two keys share a label with a chance of about
#: 2**-64 a pair).
HASH_DIGITS = 16


def top_setting(top: object, most: int = MAX_TOP) -> int:
    """``top`` if it is an int from 0 (no keys shown) to ``most``; else a TypeError or
    ValueError naming it."""
    if isinstance(top, bool) or not isinstance(top, int):
        raise TypeError(f"`top` must be an int, not {type(top).__name__} ({top!r})")
    if not 0 <= top <= most:
        raise ValueError(f"`top` must be from 0 (no keys shown) to {most}, got {top}")
    return top


class KeyLabels:
    """What an exporter writes for a key: the key, a salted hash of it, or nothing."""

    __slots__ = ("_salt", "mode")

    def __init__(self, metrics_keys: object, salt: object) -> None:
        if not isinstance(metrics_keys, str):
            raise TypeError(
                "`metrics_keys` must be a str ('plain', 'hash' or 'none'), "
                f"not {type(metrics_keys).__name__} ({metrics_keys!r})"
            )
        if metrics_keys not in _CHOICES:
            raise ValueError(
                f"`metrics_keys` must be 'plain', 'hash' or 'none', got {metrics_keys!r}"
            )
        self.mode: MetricsKeys = metrics_keys  # type: ignore[assignment]
        if salt is not None and metrics_keys != "hash":
            raise ValueError(f"`salt` applies only to metrics_keys='hash'; got {metrics_keys!r}")
        if salt is None:
            self._salt = os.urandom(32)
        elif isinstance(salt, bytes | str):
            self._salt = salt.encode() if isinstance(salt, str) else bytes(salt)
            if not self._salt:
                raise ValueError("`salt` must not be empty")
        else:
            raise TypeError(f"`salt` must be bytes or a str, not {type(salt).__name__} ({salt!r})")

    def label(self, key: str) -> str | None:
        """The label value for ``key``; None when keys are not shown."""
        if self.mode == "plain":
            return key
        if self.mode == "none":
            return None
        data = key.encode("utf-8", "surrogatepass")
        return hmac.new(self._salt, data, hashlib.sha256).hexdigest()[:HASH_DIGITS]

    def top(self, pairs: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
        """``(label, refusals)`` for ``top_blocked()``'s ``(key, refusals)``: none when keys
        are not shown, and one pair a label (two keys whose hashes share their first digits
        are added up)."""
        totals: dict[str, int] = {}
        for key, refusals in pairs:
            label = self.label(key)
            if label is not None:
                totals[label] = totals.get(label, 0) + refusals
        return list(totals.items())
