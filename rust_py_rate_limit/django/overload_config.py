"""``RUST_PY_RATE_LIMIT["OVERLOAD"]``, read into an :class:`OverloadPolicy` at start-up.

Every mistake is an ``ImproperlyConfigured`` naming the setting
(``RUST_PY_RATE_LIMIT['OVERLOAD']['QUEUE']``), raised when Django builds the middleware.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from .._core import ConcurrencyLimiter, ManualClock
from ..overload import OverloadPolicy
from ..settings_names import unknown_setting_message
from .config import SETTING, _bad, _callable, _label, _strings, instance_setting, read_settings

__all__ = ["OVERLOAD", "OVERLOAD_NAMES", "overload_policy_from_settings"]

#: The key of ``RUST_PY_RATE_LIMIT`` holding the overload settings.
OVERLOAD = "OVERLOAD"

#: OverloadPolicy's keyword parameters: the settings are their names in upper case, so a
#: setting added there is read here.
_POLICY = inspect.signature(OverloadPolicy).parameters

#: Settings that are callables, given directly or as dotted paths.
_CALLABLES = {
    "PRIORITY": "priority",
    "CONCURRENCY_KEY": "concurrency_key",
    "ON_OVERLOADED": "on_overloaded",
}

#: Settings read here before OverloadPolicy sees them (objects or their dotted paths, lists).
_READ_HERE = frozenset({*_CALLABLES, "CONCURRENCY", "CLOCK", "EXEMPT_PATHS"})

#: Settings whose values OverloadPolicy checks, passed on under these names.
_PASSED_ON = {name.upper(): name for name in _POLICY if name.upper() not in _READ_HERE}

#: Every key ``RUST_PY_RATE_LIMIT["OVERLOAD"]`` accepts; any other key is an error.
OVERLOAD_NAMES = frozenset(name.upper() for name in _POLICY)

#: Settings that may be None, meaning "not given" (OverloadPolicy's default is None; for
#: TIMEOUT, no timeout); None anywhere else is an error.
_NONE_MEANS_UNSET = frozenset(name.upper() for name, p in _POLICY.items() if p.default is None)

#: OverloadPolicy's parameters, as its errors name them, to the settings they come from.
_BLAME = {
    **{name: name.upper() for name in _POLICY},
    "limit": "MAX_IN_FLIGHT",  # the ConcurrencyLimiter's name for it
}


def _name(name: str) -> tuple[str, str]:
    return (OVERLOAD, name)


def _blame(exc: Exception) -> str | None:
    """The setting an error of OverloadPolicy or the ConcurrencyLimiter is about."""
    for parameter in re.findall(r"`(\w+)`", str(exc)):
        if parameter in _BLAME:
            return _BLAME[parameter]
    return None


def overload_policy_from_settings(config: object) -> OverloadPolicy:
    """The policy that ``config`` (the whole ``RUST_PY_RATE_LIMIT`` setting) describes in its
    ``"OVERLOAD"`` key."""
    settings = {} if config is None else read_settings(config)  # unknown keys, first
    if OVERLOAD not in settings:
        raise ImproperlyConfigured(
            f"{SETTING}[{OVERLOAD!r}] is not set: the overload middleware needs at least "
            f'{SETTING} = {{"{OVERLOAD}": {{"MAX_IN_FLIGHT": 8}}}}'
        )
    overload = settings[OVERLOAD]
    if not isinstance(overload, Mapping):
        raise ImproperlyConfigured(
            f"{SETTING}[{OVERLOAD!r}] must be a dict, not {type(overload).__name__}"
        )
    unknown = sorted(str(name) for name in overload if name not in OVERLOAD_NAMES)
    if unknown:
        raise ImproperlyConfigured(
            unknown_setting_message(
                unknown[0], OVERLOAD_NAMES, None, label=lambda n: _label(_name(n))
            )
        )
    for name, value in overload.items():
        if value is None and name not in _NONE_MEANS_UNSET:
            raise _bad(_name(name), "must not be None")
    given = {name: value for name, value in overload.items() if value is not None}
    kwargs: dict[str, Any] = {_PASSED_ON[n]: v for n, v in given.items() if n in _PASSED_ON}
    for name, param in _CALLABLES.items():
        if name in given:
            kwargs[param] = _callable(_name(name), given[name])
    if "EXEMPT_PATHS" in given:
        kwargs["exempt_paths"] = _strings(_name("EXEMPT_PATHS"), given["EXEMPT_PATHS"])
    if "CONCURRENCY" in given:
        kwargs["concurrency"] = instance_setting(
            _name("CONCURRENCY"),
            given["CONCURRENCY"],
            ConcurrencyLimiter,
            "a ConcurrencyLimiter",
        )
    if "CLOCK" in given:
        kwargs["clock"] = instance_setting(
            _name("CLOCK"), given["CLOCK"], ManualClock, "a ManualClock"
        )
    try:
        return OverloadPolicy(**kwargs)
    except (TypeError, ValueError, OverflowError) as exc:
        name = _blame(exc)
        if name is None:
            raise ImproperlyConfigured(f"{SETTING}[{OVERLOAD!r}] is invalid: {exc}") from exc
        raise _bad(_name(name), f"is invalid: {exc}") from exc
