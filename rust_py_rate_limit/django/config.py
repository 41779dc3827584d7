"""The ``RUST_PY_RATE_LIMIT`` setting, read into a :class:`RequestPolicy` at start-up.

Every mistake is an ``ImproperlyConfigured`` naming the setting, raised when Django builds the
middleware (when ``runserver``, gunicorn or uvicorn load the application, or at a test client's
first request), never a silent default.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from .._core import ManualClock, RateLimiter, StorageError
from ..keys import key_func_from_spec, remote_address
from ..policy import STORAGE_SETTINGS, RequestPolicy, check_on_blocked
from ..settings_names import renamed, unknown_setting_message
from .responses import OnBlocked

__all__ = [
    "SETTING",
    "SETTING_NAMES",
    "instance_setting",
    "policy_from_settings",
    "read_settings",
    "storage_from_settings",
]

#: The name of the Django setting.
SETTING = "RUST_PY_RATE_LIMIT"

#: Every key the setting accepts; any other key is an error.
SETTING_NAMES = frozenset(
    {
        "LIMIT",
        "WINDOW_SECONDS",
        "RATE",
        "LIMITER",
        "ALGORITHM",
        "BURST",
        "MAX_KEYS",
        "CLEANUP_INTERVAL",
        "CLOCK",
        "KEY_FUNC",
        "TRUSTED_PROXIES",
        "COST",
        "DYNAMIC_LIMIT",
        "METHODS",
        "EXEMPT_PATHS",
        "EXEMPT_METHODS",
        "HEADERS",
        "RESET_FORMAT",
        "NAME",
        "STATUS_CODE",
        "BODY",
        "ON_BLOCKED",
        "OVERLOAD",  # OverloadMiddleware's settings, a dict of their own (overload_config.py)
        *(name.upper() for name in STORAGE_SETTINGS),
    }
)

#: Old setting names still read, with a DeprecationWarning: old name -> current one.
_DEPRECATED = {"KEY": "KEY_FUNC"}

#: RequestPolicy's parameters, as its errors name them, to the settings they come from.
_BLAME = {name.lower(): name for name in SETTING_NAMES}

#: Settings whose values the policy and the core check, passed on under these names.
_PASSED_ON = {
    "RATE": "rate",
    "LIMIT": "limit",
    "WINDOW_SECONDS": "window_seconds",
    "ALGORITHM": "algorithm",
    "BURST": "burst",
    "MAX_KEYS": "max_keys",
    "CLEANUP_INTERVAL": "cleanup_interval",
    "HEADERS": "headers",
    "RESET_FORMAT": "reset_format",
    "NAME": "name",
    "STATUS_CODE": "status_code",
    "BODY": "body",
    **{name.upper(): name for name in STORAGE_SETTINGS},
}

_SEQUENCES = (list, tuple, set, frozenset)

#: Settings for which None means "not given"; None anywhere else is an error.
_NONE_MEANS_UNSET = frozenset(
    {
        "LIMIT",
        "WINDOW_SECONDS",
        "RATE",
        "LIMITER",
        "ALGORITHM",
        "BURST",
        "MAX_KEYS",
        "CLEANUP_INTERVAL",
        "CLOCK",
        "DYNAMIC_LIMIT",
        "BODY",
        "ON_BLOCKED",
        "HEADERS",
        "METHODS",
        *(name.upper() for name in STORAGE_SETTINGS),
    }
)


#: A setting's name: a key of the setting, or the path of keys to a nested one
#: (``("OVERLOAD", "QUEUE")`` for ``RUST_PY_RATE_LIMIT['OVERLOAD']['QUEUE']``).
SettingName = str | tuple[str, ...]


def _label(name: SettingName) -> str:
    path = (name,) if isinstance(name, str) else name
    return SETTING + "".join(f"[{part!r}]" for part in path)


def _bad(name: SettingName, problem: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"{_label(name)} {problem}")


def _import(name: SettingName, path: str, what: str) -> Any:
    try:
        return import_string(path)
    except ImportError as exc:
        raise _bad(name, f"must be {what}; cannot import {path!r}: {exc}") from exc


def _callable(name: SettingName, value: object) -> Callable[..., Any]:
    """A callable given directly or as a dotted path."""
    what = "a callable or the dotted path to one"
    if isinstance(value, str):
        value = _import(name, value, what)
        if not callable(value):
            raise _bad(name, f"must name a callable, not a {type(value).__name__}")
    if not callable(value):
        raise _bad(name, f"must be {what}, not {type(value).__name__}")
    return value


def instance_setting(name: SettingName, value: object, kind: type, what: str) -> Any:
    """An object given directly or as the dotted path to it (e.g. a module-level limiter)."""
    if isinstance(value, str):
        value = _import(name, value, f"the dotted path to {what}")
    if not isinstance(value, kind):
        raise _bad(name, f"must be {what} or the dotted path to one, not {type(value).__name__}")
    return value


def _strings(name: SettingName, value: object) -> list[str]:
    """A list, tuple or set of str (a lone str counts as one entry)."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, _SEQUENCES):
        raise _bad(name, f"must be a list of strings, not {type(value).__name__}")
    for entry in value:
        if not isinstance(entry, str):
            raise _bad(name, f"entries must be str, not {type(entry).__name__} ({entry!r})")
    return list(value)


def read_settings(config: object) -> dict[str, Any]:
    """The setting as a dict with current names: not a dict, an unknown name or None where it
    means nothing is an ``ImproperlyConfigured``; a deprecated name is read with a warning."""
    if not isinstance(config, Mapping):
        raise ImproperlyConfigured(f"{SETTING} must be a dict, not {type(config).__name__}")
    try:
        config = renamed(config, _DEPRECATED, label=_label)
    except ValueError as exc:
        raise ImproperlyConfigured(str(exc)) from None
    unknown = sorted(str(name) for name in config if name not in SETTING_NAMES)
    if unknown:
        raise ImproperlyConfigured(
            unknown_setting_message(unknown[0], SETTING_NAMES, None, label=_label)
        )
    for name, value in config.items():
        if value is None and name not in _NONE_MEANS_UNSET:
            raise _bad(name, "must not be None")
    return config


def storage_from_settings(config: object) -> dict[str, Any]:
    """The storage settings (``STORAGE``, ``KEY_PREFIX``, ...) of the setting, as
    :class:`RateLimiter` keyword arguments: where every limiter of the site keeps its counts.
    Empty when the setting is absent or names none."""
    if config is None:
        return {}
    given = read_settings(config)
    return {
        name: given[name.upper()]
        for name in STORAGE_SETTINGS
        if given.get(name.upper()) is not None
    }


def _key(value: object, trusted_proxies: list[str]) -> Callable[[Any], str]:
    if isinstance(value, str) and (
        value in ("ip", "user") or value.startswith("header:") or "." not in value
    ):
        try:
            return key_func_from_spec(value, trusted_proxies=trusted_proxies)
        except (TypeError, ValueError) as exc:
            raise _bad(
                "KEY_FUNC", f"must be 'ip', 'user', 'header:<name>' or a dotted path: {exc}"
            ) from exc
    return _callable("KEY_FUNC", value)


def _cost(value: object) -> int | Callable[[Any], int]:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise _bad("COST", f"must be >= 1, not {value}")
        return value
    if isinstance(value, str) or (callable(value) and not isinstance(value, bool)):
        return _callable("COST", value)
    raise _bad("COST", f"must be an int, a callable or a dotted path, not {value!r}")


def _blame(exc: Exception) -> str | None:
    """The setting an error of RequestPolicy or the core is about."""
    text = str(exc)
    for parameter in re.findall(r"`(\w+)[`=]", text):  # `name` or `name=value`
        if parameter in _BLAME:
            return _BLAME[parameter]
    if "rate string" in text:
        return "RATE"
    if "storage URL" in text:
        return "STORAGE"
    if "policy name" in text:
        return "NAME"
    return None


def policy_from_settings(config: object) -> tuple[RequestPolicy, OnBlocked | None]:
    """The policy and the ``ON_BLOCKED`` callable that ``config`` (the setting) describes."""
    if config is None:
        raise ImproperlyConfigured(
            f"{SETTING} is not set: the middleware needs a limit, e.g. "
            f'{SETTING} = {{"LIMIT": 100, "WINDOW_SECONDS": 60, "KEY_FUNC": "ip"}}'
        )
    config = read_settings(config)
    given = {name: value for name, value in config.items() if value is not None}
    sources = [name for name in ("LIMITER", "RATE", "LIMIT") if name in given]
    if len(sources) > 1:
        raise ImproperlyConfigured(
            f"{_label(sources[0])} and {_label(sources[1])} cannot both be given: "
            "the limit comes from one of them"
        )
    if "WINDOW_SECONDS" in given and "LIMIT" not in given:
        raise _bad("WINDOW_SECONDS", "is only used with 'LIMIT'")
    if "LIMIT" in given and "WINDOW_SECONDS" not in given:
        raise _bad("LIMIT", "needs 'WINDOW_SECONDS' (or give 'RATE' such as '100/minute')")
    if not sources:
        raise ImproperlyConfigured(
            f"{SETTING} needs 'LIMIT' and 'WINDOW_SECONDS', 'RATE' ('100/minute') or 'LIMITER'"
        )

    kwargs: dict[str, Any] = {_PASSED_ON[n]: v for n, v in given.items() if n in _PASSED_ON}
    if "HEADERS" in config:  # None is a style here (no headers), not "unset"
        kwargs["headers"] = config["HEADERS"]
    proxies = _strings("TRUSTED_PROXIES", given.get("TRUSTED_PROXIES", ()))
    try:
        remote_address(proxies)
    except (TypeError, ValueError) as exc:
        raise _bad("TRUSTED_PROXIES", f"is invalid: {exc}") from exc
    kwargs["key_func"] = _key(given.get("KEY_FUNC", "ip"), proxies)
    kwargs["exempt_paths"] = _strings("EXEMPT_PATHS", given.get("EXEMPT_PATHS", ()))
    kwargs["exempt_methods"] = _strings("EXEMPT_METHODS", given.get("EXEMPT_METHODS", ()))
    if "METHODS" in given:
        kwargs["methods"] = _strings("METHODS", given["METHODS"])
    if "COST" in given:
        kwargs["cost"] = _cost(given["COST"])
    if "DYNAMIC_LIMIT" in given:
        kwargs["dynamic_limit"] = _callable("DYNAMIC_LIMIT", given["DYNAMIC_LIMIT"])
    if "CLOCK" in given:
        kwargs["clock"] = instance_setting("CLOCK", given["CLOCK"], ManualClock, "a ManualClock")
    limiter = None
    if "LIMITER" in given:
        limiter = instance_setting("LIMITER", given["LIMITER"], RateLimiter, "a RateLimiter")
    on_blocked = None
    if "ON_BLOCKED" in given:
        on_blocked = _callable("ON_BLOCKED", given["ON_BLOCKED"])
        try:
            check_on_blocked(on_blocked, _label("ON_BLOCKED"))
        except TypeError as exc:
            raise ImproperlyConfigured(str(exc)) from exc
    try:
        policy = RequestPolicy(limiter, **kwargs)
    except StorageError as exc:  # a shm:// table that cannot be made or opened
        raise _bad("STORAGE", f"cannot be opened: {exc}") from exc
    except (TypeError, ValueError) as exc:
        name = _blame(exc)
        if name is None:
            raise ImproperlyConfigured(f"{SETTING} is invalid: {exc}") from exc
        raise _bad(name, f"is invalid: {exc}") from exc
    return policy, on_blocked
