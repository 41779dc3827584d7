"""What every web integration shares: which limiter, which key, what cost, who is exempt, and
the refusal to send. The FastAPI, Django and Flask adapters only translate requests and
responses; every decision goes through :class:`RequestPolicy`.
"""

from __future__ import annotations

import json
import threading
import warnings
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ._callables import check_arity
from ._core import Decision, RateLimiter
from .headers import HeaderWriter
from .keys import accepts_asgi_scope, key_func_from_spec
from .settings import (
    REQUEST_DEFAULTS,
    LimiterSettings,
    PolicySettings,
    RequestSettings,
    StorageSettings,
    reject_unknown,
    setting_names,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "DEFAULT_BODY",
    "LIMITER_SETTINGS",
    "MAX_DYNAMIC_RATES",
    "POLICY_SETTINGS",
    "REQUEST_SETTINGS",
    "STORAGE_SETTINGS",
    "Refusal",
    "RequestPolicy",
    "check_on_blocked",
    "check_override_defaults",
    "key_func_setting",
    "mark_route_limit",
    "methods_matcher",
    "overrides_defaults",
    "overriding_methods",
    "view_scope",
]

#: The JSON body of a 429 unless configured otherwise.
DEFAULT_BODY: dict[str, str] = {"detail": "Too many requests"}

#: How many distinct rate strings a ``dynamic_limit`` callable may return (one limiter each).
MAX_DYNAMIC_RATES = 1024

#: Where a limiter keeps its counts: :class:`RateLimiter`'s storage keyword arguments. Every web
#: integration accepts them, and every limiter it builds (default, per route, per tier) uses them.
STORAGE_SETTINGS: tuple[str, ...] = setting_names(StorageSettings)

#: Every keyword argument of the limiter a policy builds, besides its rate.
LIMITER_SETTINGS: tuple[str, ...] = setting_names(LimiterSettings)

#: What a policy does with a request (key, cost, exemptions, headers, refusal).
REQUEST_SETTINGS: tuple[str, ...] = setting_names(RequestSettings)

#: Every keyword setting of :class:`RequestPolicy` but ``rate`` and ``scope``.
POLICY_SETTINGS: frozenset[str] = frozenset(setting_names(PolicySettings))


class Refusal:
    """The response to a refused request: a status code and a body.

    A ``dict`` or ``list`` body is sent as JSON; a ``str`` as ``text/plain``; ``bytes`` with
    ``content_type`` (default ``application/octet-stream``).
    """

    __slots__ = ("body", "content_type", "status_code")

    def __init__(
        self, status_code: int = 429, body: Any = None, content_type: str | None = None
    ) -> None:
        if isinstance(status_code, bool) or not isinstance(status_code, int):
            raise TypeError(f"`status_code` must be an int, not {type(status_code).__name__}")
        if not 400 <= status_code <= 599:
            raise ValueError(
                f"`status_code` must be an HTTP error status (4xx/5xx), not {status_code}"
            )
        if body is None:
            body = DEFAULT_BODY
        if isinstance(body, dict | list):
            data, default_type = json.dumps(body).encode(), "application/json"
        elif isinstance(body, str):
            data, default_type = body.encode(), "text/plain; charset=utf-8"
        elif isinstance(body, bytes):
            data, default_type = body, "application/octet-stream"
        else:
            raise TypeError(f"`body` must be a dict, list, str or bytes, not {type(body).__name__}")
        self.status_code = status_code
        self.body = data
        self.content_type = content_type or default_type


def _check_cost(cost: object, where: str) -> int:
    if isinstance(cost, bool) or not isinstance(cost, int):
        raise TypeError(f"{where} must be an int, not {type(cost).__name__}")
    if cost < 1:
        raise ValueError(f"{where} must be >= 1, not {cost}")
    return cost


def _path_matcher(paths: Iterable[str]) -> Callable[[str], bool]:
    """Exact paths, and prefixes written with a trailing ``*`` (``"/static/*"``)."""
    if isinstance(paths, str):
        paths = [paths]
    exact: set[str] = set()
    prefixes: list[str] = []
    for path in paths:
        if not isinstance(path, str):
            raise TypeError(f"`exempt_paths` entries must be str, not {type(path).__name__}")
        if path.endswith("*"):
            prefixes.append(path[:-1])
        else:
            exact.add(path)
    prefix_tuple = tuple(prefixes)
    return lambda path: path in exact or (bool(prefix_tuple) and path.startswith(prefix_tuple))


def check_on_blocked(
    on_blocked: Any, setting: str = "`on_blocked`", call: str = "on_blocked(request, decision)"
) -> Any:
    """``on_blocked`` if it is None or can be called as ``on_blocked(request, decision)`` (the
    one signature of every web integration), else a TypeError naming ``setting``, raised when
    the app is configured rather than at the first refused request."""
    if on_blocked is None:
        return None
    if not callable(on_blocked):
        raise TypeError(f"{setting} must be callable, not {type(on_blocked).__name__}")
    check_arity(on_blocked, 2, setting, call)
    return on_blocked


class _NotGiven:
    def __repr__(self) -> str:
        return "<not given>"


#: The default of the deprecated ``key=`` spelling, told apart from any value a user may give.
NOT_GIVEN: Any = _NotGiven()


def key_func_setting(key_func: Any, key: Any, default: Any = "ip", stacklevel: int = 3) -> Any:
    """The key setting of a web integration: ``key_func`` (the one name everywhere), or the
    older ``key`` spelling with a ``DeprecationWarning``. ``NOT_GIVEN`` marks either as absent."""
    if key is NOT_GIVEN:
        return default if key_func is NOT_GIVEN else key_func
    if key_func is not NOT_GIVEN:
        raise TypeError("give `key_func` only (`key` is its old, deprecated spelling)")
    warnings.warn(
        "`key=` is deprecated: the key setting is `key_func` in every web integration",
        DeprecationWarning,
        stacklevel=stacklevel,
    )
    return key


#: The attribute that marks a view, endpoint or dependency with a rate limit of its own that
#: replaces the app's default limit: the HTTP methods it covers (``"*"`` for all).
_ROUTE_LIMIT = "_rust_py_rate_limit_override_defaults"


def mark_route_limit(
    target: Any, override_defaults: bool, methods: frozenset[str] | None = None
) -> None:
    """Mark ``target`` as limited on its own for ``methods`` (all when None). With
    ``override_defaults`` (the default in every integration, as in flask-limiter) the app's
    default limit does not count those requests; with False it counts them as well."""
    if not check_override_defaults(override_defaults):
        return
    setattr(target, _ROUTE_LIMIT, overriding_methods(target) | (methods or frozenset("*")))


def check_override_defaults(override_defaults: object) -> bool:
    """``override_defaults`` if it is a bool, else a TypeError naming it."""
    if not isinstance(override_defaults, bool):
        raise TypeError(
            f"`override_defaults` must be True or False, not {type(override_defaults).__name__}"
        )
    return override_defaults


def overriding_methods(target: Any) -> frozenset[str]:
    """The HTTP methods for which ``target`` has a limit of its own that replaces the default
    (``"*"``: all; empty: none)."""
    covered: frozenset[str] = getattr(target, _ROUTE_LIMIT, frozenset())
    return covered


def overrides_defaults(target: Any, method: str) -> bool:
    """Whether ``target`` has a limit of its own that replaces the default for ``method``."""
    covered = overriding_methods(target)
    return "*" in covered or method in covered


def methods_matcher(methods: Iterable[str] | str, setting: str) -> frozenset[str]:
    """The upper-case HTTP methods of a ``methods``-like setting (a lone str is one method)."""
    if isinstance(methods, str):
        methods = [methods]
    try:
        entries = list(methods)
    except TypeError:
        raise TypeError(
            f"`{setting}` must be a list of HTTP methods, not {type(methods).__name__}"
        ) from None
    for method in entries:
        if not isinstance(method, str):
            raise TypeError(f"`{setting}` entries must be str, not {type(method).__name__}")
        if not method.isalpha():
            raise ValueError(
                f"`{setting}` entries must be HTTP methods such as 'POST', not {method!r}"
            )
    return frozenset(m.upper() for m in entries)


def view_scope(view: object) -> str:
    """The key scope of a per-route limit: the view's ``module.qualname`` (a callable object
    without a ``__qualname__`` goes by its class), so each route counts apart."""
    module = getattr(view, "__module__", None) or ""
    name = getattr(view, "__qualname__", None) or getattr(view, "__name__", None)
    if not isinstance(name, str):
        name = type(view).__qualname__
    return f"{module}.{name}" if module else name


def _build(
    rate: str | None,
    limit: int | None,
    window: float | None,
    **settings: Any,
) -> RateLimiter:
    """The limiter of a policy given settings: from ``rate``, or ``limit`` and ``window``."""
    if rate is not None:
        if limit is not None or window is not None:
            raise TypeError("give either `rate` or `limit` and `window_seconds`, not both")
        if not isinstance(rate, str):
            raise TypeError(f"`rate` must be a str such as '100/minute', not {type(rate).__name__}")
        algorithm = settings.pop("algorithm")
        return RateLimiter.from_rate(rate, algorithm, **settings)
    if limit is None or window is None:
        raise TypeError(
            "a rate limit needs `limiter`, `rate` ('100/minute'), or `limit` and `window_seconds`"
        )
    return RateLimiter(limit, window, **settings)


class RequestPolicy:
    """One rate limit applied to requests.

    Give either ``limiter`` (an existing :class:`RateLimiter`, in memory or on Redis) or the
    settings to build one: ``rate`` (``"100/minute"``) or ``limit`` and ``window_seconds``, with
    ``algorithm``, ``burst``, ``max_keys``, ``cleanup_interval`` and ``clock``, and where it keeps
    its counts: ``storage`` (``"redis://..."``, ``"shm://..."``; memory by default),
    ``key_prefix``, ``timeout``, ``on_storage_error``, ``fallback``, ``local_deny_cache`` and
    ``on_full`` (see :data:`STORAGE_SETTINGS`).

    - ``key_func``: ``"ip"`` (default), ``"user"``, ``"header:<name>"`` or a callable of the
      request; ``trusted_proxies`` configures the address lookup of the named ones.
    - ``cost``: an int, or a callable of the request returning one.
    - ``exempt_paths`` (exact, or a prefix ending in ``*``) and ``exempt_methods`` are never
      counted and get no headers; with ``methods``, only requests of those methods are counted.
    - ``dynamic_limit``: a callable of the request returning a rate string (per-tenant tiers)
      or None for the default limit; each distinct rate gets its own limiter,
      ``limiter.with_rate(rate)``: the same algorithm, max_keys, cleanup_interval, clock and
      storage (the burst belongs to the default limit and is not carried over).
    - ``headers``: ``"x-ratelimit"`` (default), ``"ietf"``, ``"both"`` or None;
      ``name`` names the policy in the IETF fields; ``reset_format``: ``X-RateLimit-Reset`` as
      seconds from now (``"delta"``, default) or as a Unix time (``"epoch"``).
    - ``status_code`` and ``body``: the refusal (429 with ``{"detail": "Too many requests"}``).
    - ``scope``: a prefix for every key, so limits that share one store (Redis) stay apart.

    The keyword settings but ``rate`` and ``scope`` are
    :class:`~rust_py_rate_limit.settings.PolicySettings`, the one list every web integration
    takes; the request settings not given are those of
    :data:`~rust_py_rate_limit.settings.REQUEST_DEFAULTS`.
    """

    def __init__(
        self,
        limiter: RateLimiter | None = None,
        *,
        rate: str | None = None,
        scope: str = "",
        **settings: Unpack[PolicySettings],
    ) -> None:
        reject_unknown(settings, POLICY_SETTINGS, "RequestPolicy")
        given: dict[str, Any] = dict(settings)
        # The limiter's settings are passed on as given (None: the limiter's default); the
        # request settings not given take their defaults.
        building = {name: given.get(name) for name in LIMITER_SETTINGS}
        limit, window_seconds = given.get("limit"), given.get("window_seconds")
        request: dict[str, Any] = {**REQUEST_DEFAULTS}
        request.update((name, given[name]) for name in REQUEST_SETTINGS if name in given)
        if limiter is not None:
            if not isinstance(limiter, RateLimiter):
                raise TypeError(f"`limiter` must be a RateLimiter, not {type(limiter).__name__}")
            rates = {"rate": rate, "limit": limit, "window_seconds": window_seconds}
            both = [name for name, value in {**rates, **building}.items() if value is not None]
            if both:
                raise TypeError(
                    f"give either `limiter` or the settings to build one, not both ({both[0]})"
                )
        else:
            limiter = _build(rate, limit, window_seconds, **building)
        self.limiter = limiter
        #: A Redis-backed limiter answers async code through its awaitable twins.
        # shm:// decides in process too (a table in shared memory): no round trip to await.
        self._on_redis = not limiter.storage.startswith(("memory://", "shm://"))
        self.key_func = key_func_from_spec(
            request["key_func"], trusted_proxies=request["trusted_proxies"]
        )
        cost, methods = request["cost"], request["methods"]
        exempt_paths, exempt_methods = request["exempt_paths"], request["exempt_methods"]
        dynamic_limit = request["dynamic_limit"]
        if callable(cost):
            self._cost_func: Callable[[Any], int] | None = cost
            self._cost = 1
        else:
            self._cost_func = None
            self._cost = _check_cost(cost, "`cost`")
        exempt_paths = (exempt_paths,) if isinstance(exempt_paths, str) else tuple(exempt_paths)
        self.is_exempt_path = _path_matcher(exempt_paths)
        self.exempt_methods = methods_matcher(exempt_methods, "exempt_methods")
        #: Only requests of these methods are counted (None: every method).
        self.methods = None if methods is None else methods_matcher(methods, "methods")
        self._nothing_exempt = not self.exempt_methods and not exempt_paths and methods is None
        if dynamic_limit is not None and not callable(dynamic_limit):
            raise TypeError(f"`dynamic_limit` must be callable, not {type(dynamic_limit).__name__}")
        self.dynamic_limit = dynamic_limit
        #: Whether :meth:`resolve` may be given a raw ASGI scope instead of a request: the key
        #: function reads one, and no callable of the request (cost, dynamic limit) needs more.
        self.accepts_asgi_scope = (
            accepts_asgi_scope(self.key_func) and dynamic_limit is None and self._cost_func is None
        )
        self._dynamic: dict[str, tuple[RateLimiter, HeaderWriter]] = {}
        self._dynamic_lock = threading.Lock()
        self.headers_style = request["headers"]
        self.reset_format = request["reset_format"]
        self.name = request["name"]
        self.header_writer = self._writer(limiter)
        self.refusal = Refusal(request["status_code"], request["body"])
        if not isinstance(scope, str):
            raise TypeError(f"`scope` must be a str, not {type(scope).__name__}")
        self.scope = scope

    def exempt(self, method: str, path: str) -> bool:
        """Whether a request with this method and path is left alone."""
        if self._nothing_exempt:
            return False
        if self.methods is not None and method not in self.methods:
            return True
        return method in self.exempt_methods or self.is_exempt_path(path)

    def _writer(self, limiter: RateLimiter) -> HeaderWriter:
        return HeaderWriter(
            self.headers_style, rates=limiter.rates, name=self.name, reset=self.reset_format
        )

    def _for_rate(self, rate: str) -> tuple[RateLimiter, HeaderWriter]:
        found = self._dynamic.get(rate)
        if found is not None:
            return found
        if not isinstance(rate, str):
            raise TypeError(
                f"`dynamic_limit` must return a rate string or None, not {type(rate).__name__}"
            )
        with self._dynamic_lock:
            found = self._dynamic.get(rate)
            if found is None:
                if len(self._dynamic) >= MAX_DYNAMIC_RATES:
                    raise ValueError(
                        f"`dynamic_limit` returned {rate!r}, more than {MAX_DYNAMIC_RATES} "
                        "distinct rates; return one of a few tiers"
                    )
                try:
                    limiter = self.limiter.with_rate(rate)
                except ValueError as error:
                    raise ValueError(f"`dynamic_limit` returned {rate!r}: {error}") from None
                found = (limiter, self._writer(limiter))
                self._dynamic[rate] = found
        return found

    def resolve(self, request: Any) -> tuple[RateLimiter, HeaderWriter, str, int]:
        """The limiter, header writer, key and cost for ``request``."""
        limiter, writer = self.limiter, self.header_writer
        if self.dynamic_limit is not None:
            rate = self.dynamic_limit(request)
            if rate is not None:
                limiter, writer = self._for_rate(rate)
        key = self.key_func(request)
        if not isinstance(key, str):
            raise TypeError(
                f"the key function (`key_func`) must return a str, not {type(key).__name__}"
            )
        if self.scope:
            key = f"{self.scope}:{key}"
        cost = self._cost
        if self._cost_func is not None:
            cost = _check_cost(self._cost_func(request), "the cost function's result")
        return limiter, writer, key, cost

    def _decided(self, request: Any) -> tuple[Decision, HeaderWriter, str]:
        limiter, writer, key, cost = self.resolve(request)
        return limiter.decide(key, cost), writer, key

    async def _adecided(self, request: Any) -> tuple[Decision, HeaderWriter, str]:
        # On Redis the round trip is awaited, so the event loop runs on meanwhile; in memory
        # and in shared memory the decision is made at once, with no awaitable to go through.
        limiter, writer, key, cost = self.resolve(request)
        if self._on_redis:
            return await limiter.adecide(key, cost), writer, key
        return limiter.decide(key, cost), writer, key

    def decide(self, request: Any) -> tuple[Decision, list[tuple[str, str]]]:
        """Count ``request`` and return the decision with the headers to send."""
        decision, writer, _ = self._decided(request)
        return decision, writer.headers(decision)

    async def adecide(self, request: Any) -> tuple[Decision, list[tuple[str, str]]]:
        """:meth:`decide` for async code."""
        decision, writer, _ = await self._adecided(request)
        return decision, writer.headers(decision)

    def decide_raw(self, request: Any) -> tuple[Decision, list[tuple[bytes, bytes]]]:
        """:meth:`decide` with the headers as ASGI wants them (lowercase ``bytes`` pairs)."""
        decision, writer, _ = self._decided(request)
        return decision, writer.raw_headers(decision)

    async def adecide_raw(self, request: Any) -> tuple[Decision, list[tuple[bytes, bytes]]]:
        """:meth:`decide_raw` for async code."""
        decision, writer, _ = await self._adecided(request)
        return decision, writer.raw_headers(decision)

    async def adecide_keyed_raw(
        self, request: Any
    ) -> tuple[Decision, list[tuple[bytes, bytes]], str]:
        """:meth:`adecide_raw` and the key that was counted (for the exception of a refusal)."""
        decision, writer, key = await self._adecided(request)
        return decision, writer.raw_headers(decision), key
