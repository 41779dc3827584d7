"""The settings every web integration takes, written once.

Each group is a ``TypedDict`` (``total=False``: every setting is optional). The integrations take
them as ``**settings: Unpack[PolicySettings]`` (``typing_extensions.Unpack``), so a type checker
checks each keyword and an editor completes it, and the runtime names (the unknown-keyword
check, ``policy.STORAGE_SETTINGS``...) are read from the same classes: a setting is added here,
in one place, and :class:`~rust_py_rate_limit.policy.RequestPolicy` gives it its meaning.

What is not here differs by integration and stays in its own signature: the limit itself
(``limiter``, ``rate``: positional in some), ``scope`` (``""`` or "per view" when None),
``on_blocked`` (typed with the framework's request and response) and ``override_defaults``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, Literal, TypedDict

from ._core import ConcurrencyLimiter, ManualClock
from .exceptions import Overloaded
from .headers import HeaderStyle, ResetFormat
from .keys import KeyFunc

__all__ = [
    "REQUEST_DEFAULTS",
    "CostSpec",
    "DynamicLimit",
    "LimiterSettings",
    "OverloadSettings",
    "PolicySettings",
    "RequestSettings",
    "RouteSettings",
    "SharedSettings",
    "StorageSettings",
    "reject_unknown",
    "setting_names",
]

#: ``cost``: an int, or a callable of the request returning one.
CostSpec = int | Callable[[Any], int]
#: ``dynamic_limit``: a callable of the request returning a rate string, or None (the default).
DynamicLimit = Callable[[Any], str | None]


class StorageSettings(TypedDict, total=False):
    """Where a limiter keeps its counts: :class:`RateLimiter`'s storage keyword arguments
    (memory when ``storage`` is None), and what a new key gets when that storage is full
    (``on_full``). Every limiter an app builds uses them."""

    storage: str | None
    key_prefix: str | None
    timeout: float | None
    on_storage_error: str | None
    fallback: str | None
    local_deny_cache: bool | None
    on_full: Literal["reject", "evict"] | None


class LimiterSettings(StorageSettings, total=False):
    """How a limiter is built, besides its rate (None: :class:`RateLimiter`'s default)."""

    algorithm: str | None
    burst: int | None
    max_keys: int | None
    cleanup_interval: float | None
    clock: ManualClock | None


class RequestSettings(TypedDict, total=False):
    """What a limit does with a request: its key, its cost, who is exempt, the headers and the
    refusal. Defaults: :data:`REQUEST_DEFAULTS`."""

    key_func: str | KeyFunc
    trusted_proxies: Iterable[str] | str
    cost: CostSpec
    methods: Iterable[str] | None
    exempt_paths: Iterable[str] | str
    exempt_methods: Iterable[str] | str
    dynamic_limit: DynamicLimit | None
    headers: HeaderStyle
    reset_format: ResetFormat
    name: str
    status_code: int
    body: Any


class RouteSettings(RequestSettings, total=False):
    """What a per-route limit may set over the defaults it inherits (FastAPI's
    ``Limiter.limit``, Flask's ``limit``): the request settings and the algorithm; the
    storage is the app's."""

    algorithm: str | None
    burst: int | None


class SharedSettings(LimiterSettings, RequestSettings, total=False):
    """The limiter and request settings: the defaults a FastAPI ``Limiter`` holds."""


class PolicySettings(SharedSettings, total=False):
    """Every keyword setting of a limit but ``rate``: what ``RequestPolicy``, the Starlette
    middleware, FastAPI's ``RateLimit`` and Django's ``ratelimit`` take as ``**settings``."""

    limit: int | None
    window_seconds: float | None


class OverloadSettings(TypedDict, total=False):
    """The overload layers' settings: what ``OverloadPolicy`` takes, and with it the Starlette
    ``OverloadMiddleware``, Django's ``OVERLOAD`` setting and Flask's ``FlaskOverload``."""

    max_in_flight: int | Literal["auto"] | None
    queue: int
    queue_timeout: float
    order: Literal["fifo", "lifo"]
    adaptive: Literal["gradient", "aimd"] | None
    initial_limit: int | None
    min_limit: int | None
    max_limit: int | None
    name: str | None
    concurrency: ConcurrencyLimiter | None
    clock: ManualClock | None
    timeout: float | None
    priority: Callable[[Any], int] | None
    concurrency_key: Callable[[Any], str] | None
    exempt_paths: Iterable[str]
    shed_status: int
    timeout_status: int
    retry_after: int
    body: Any
    timeout_body: Any
    on_overloaded: Callable[[Any, Overloaded], Any] | None


#: The value of each request setting when it is not given.
REQUEST_DEFAULTS: Final[RequestSettings] = {
    "key_func": "ip",
    "trusted_proxies": (),
    "cost": 1,
    "methods": None,
    "exempt_paths": (),
    "exempt_methods": (),
    "dynamic_limit": None,
    "headers": "x-ratelimit",
    "reset_format": "delta",
    "name": "default",
    "status_code": 429,
    "body": None,
}


def setting_names(*shapes: type) -> tuple[str, ...]:
    """The keys of the ``TypedDict`` classes ``shapes``, in the order they are written."""
    names: dict[str, None] = {}
    for shape in shapes:
        names.update(dict.fromkeys(shape.__annotations__))
    return tuple(names)


def reject_unknown(given: Mapping[str, object], known: Iterable[str], where: str) -> None:
    """A TypeError naming the first keyword of ``given`` that is not in ``known``, as Python
    words it for ``where`` (the function the user called), with a "did you mean" when one of
    ``known`` is close."""
    names = frozenset(known)
    unknown = sorted(name for name in given if name not in names)
    if not unknown:
        return
    close = difflib.get_close_matches(unknown[0], sorted(names), n=1, cutoff=0.75)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise TypeError(f"{where}() got an unexpected keyword argument {unknown[0]!r}{hint}")
