"""Rate limiting for Flask: a default limit for every request, per-route and per-blueprint limits.

::

    from flask import Flask
    from rust_py_rate_limit.flask import FlaskRateLimiter

    app = Flask(__name__)
    limiter = FlaskRateLimiter(app, limit=100, window_seconds=60)

    @app.get("/search")
    @limiter.limit("10/minute")
    def search() -> str: ...

Requests are counted in a ``before_request`` hook (a refused request never reaches the view) and
the headers are added in an ``after_request`` hook. The decorators only mark the view function or
blueprint, so they may be written above or below ``@app.route``. A route's or blueprint's own
limit replaces the default limit (``override_defaults=False`` counts both), as in flask-limiter.
Every limiter the app builds keeps its counts in the app's storage (``RATELIMIT_STORAGE_URI``).
Every decision goes through :class:`~rust_py_rate_limit.policy.RequestPolicy`.
"""

from __future__ import annotations

import inspect
import threading
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar, overload

from flask import Blueprint, Flask, Response, current_app, request
from flask.typing import ResponseReturnValue

from ._core import Decision, ManualClock, RateLimiter
from .flask_overload import OVERLOAD_CONFIG_KEYS, FlaskOverload
from .headers import HeaderStyle, ResetFormat
from .keys import KeyFunc
from .policy import (
    LIMITER_SETTINGS,
    NOT_GIVEN,
    STORAGE_SETTINGS,
    RequestPolicy,
    check_on_blocked,
    check_override_defaults,
    key_func_setting,
)
from .settings import CostSpec, DynamicLimit, RouteSettings, reject_unknown, setting_names
from .settings_names import renamed, unknown_setting_message

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["OVERLOAD_CONFIG_KEYS", "SETTINGS", "FlaskOverload", "FlaskRateLimiter", "OnBlocked"]

#: Called as ``on_blocked(request, decision)`` for a refused request (the Flask request, as in
#: every web integration); what it returns is the response (plain or async).
OnBlocked = Callable[[Any, Decision], Any]

_Target = TypeVar("_Target", bound=Callable[..., Any] | Blueprint)

#: Every setting read from ``app.config``, by the constructor argument that overrides it.
SETTINGS: Final[dict[str, str]] = {
    "limit": "RATELIMIT_LIMIT",
    "window_seconds": "RATELIMIT_WINDOW_SECONDS",
    "rate": "RATELIMIT_RATE",
    "algorithm": "RATELIMIT_ALGORITHM",
    "burst": "RATELIMIT_BURST",
    "key_func": "RATELIMIT_KEY_FUNC",
    "headers": "RATELIMIT_HEADERS",
    "reset_format": "RATELIMIT_RESET_FORMAT",
    "trusted_proxies": "RATELIMIT_TRUSTED_PROXIES",
    "exempt_paths": "RATELIMIT_EXEMPT_PATHS",
    "exempt_methods": "RATELIMIT_EXEMPT_METHODS",
    "max_keys": "RATELIMIT_MAX_KEYS",
    "cleanup_interval": "RATELIMIT_CLEANUP_INTERVAL",
    "enabled": "RATELIMIT_ENABLED",
    "status_code": "RATELIMIT_STATUS_CODE",
    "body": "RATELIMIT_BODY",
    "storage": "RATELIMIT_STORAGE_URI",
    "key_prefix": "RATELIMIT_KEY_PREFIX",
    "timeout": "RATELIMIT_TIMEOUT",
    "on_storage_error": "RATELIMIT_ON_STORAGE_ERROR",
    "fallback": "RATELIMIT_FALLBACK",
    "local_deny_cache": "RATELIMIT_LOCAL_DENY_CACHE",
    "on_full": "RATELIMIT_ON_FULL",
    "name": "RATELIMIT_NAME",
}
#: Old config names still read, with a DeprecationWarning: old name -> current one.
_DEPRECATED_CONFIG = {"RATELIMIT_KEY": "RATELIMIT_KEY_FUNC"}
#: Every ``RATELIMIT_*`` key of ``app.config`` either extension reads (FlaskOverload's are
#: ``RATELIMIT_OVERLOAD_*``); any other is a typo, reported by both.
_CONFIG_KEYS = frozenset(SETTINGS.values()) | frozenset(OVERLOAD_CONFIG_KEYS.values())

#: flask-limiter's config names that mean one of ours (None: no counterpart here).
_PEERS: dict[str, str | None] = {
    "RATELIMIT_DEFAULT": "RATELIMIT_RATE",
    "RATELIMIT_APPLICATION": None,
    "RATELIMIT_STORAGE_URL": "RATELIMIT_STORAGE_URI",
    "RATELIMIT_STORAGE_OPTIONS": None,
    "RATELIMIT_STRATEGY": "RATELIMIT_ALGORITHM",
    "RATELIMIT_HEADERS_ENABLED": "RATELIMIT_HEADERS",
    "RATELIMIT_SWALLOW_ERRORS": "RATELIMIT_ON_STORAGE_ERROR",
    "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": "RATELIMIT_FALLBACK",
    "RATELIMIT_DEFAULTS_EXEMPT_WHEN": None,
}


def check_config_keys(config: Mapping[str, Any]) -> None:
    """A ValueError for the first ``RATELIMIT_*`` key of ``config`` that no extension of this
    package reads (did you mean, and peers' names)."""
    unknown = sorted(k for k in config if k.startswith("RATELIMIT_") and k not in _CONFIG_KEYS)
    if unknown:
        raise ValueError(
            unknown_setting_message(
                unknown[0], _CONFIG_KEYS, "app.config", prefix="RATELIMIT_", peers=_PEERS
            )
        )


#: The settings every route and blueprint limit takes from the app's (unless it sets its own).
_SHARED: tuple[str, ...] = (
    "algorithm",
    "max_keys",
    "cleanup_interval",
    "key_func",
    "trusted_proxies",
    "headers",
    "reset_format",
    "exempt_paths",
    "exempt_methods",
    "status_code",
    "body",
    *STORAGE_SETTINGS,  # where the counts live: every limiter of the app shares it
)

#: The attribute of a view function holding ``(limiter, spec)`` marks; ``_EXEMPT`` as the spec.
_MARK = "_rust_py_rate_limit"
_EXTENSION = "rust_py_rate_limit"


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


_UNSET: Any = _Unset()


def _fail(exc: Exception, label: str) -> Exception:
    kind = TypeError if isinstance(exc, TypeError) else ValueError
    return kind(f"{label}: {exc}")


#: What a throwaway policy needs besides the setting it checks.
_ANCHORS: dict[str, dict[str, Any]] = {
    "limit": {"window_seconds": 1},
    "window_seconds": {"limit": 1},
    "rate": {},
    "burst": {"limit": 1, "window_seconds": 1, "algorithm": "gcra"},
    **{
        option: {"limit": 1, "window_seconds": 1, "storage": "redis://127.0.0.1"}
        for option in STORAGE_SETTINGS
        if option != "storage"
    },
}


def _validate(param: str, value: Any, label: str) -> None:
    """Check one setting on its own; the error names ``label`` (the config key or argument)."""
    if param == "enabled":
        if not isinstance(value, bool):
            raise TypeError(f"{label} must be True or False, not {value!r}")
        return
    if param == "exempt_methods" and not isinstance(value, str):
        try:
            bad = [m for m in value if not isinstance(m, str)]
        except TypeError:
            raise TypeError(f"{label} must be a list of HTTP methods, not {value!r}") from None
        if bad:
            raise TypeError(f"{label} entries must be str, not {type(bad[0]).__name__}")
    # A throwaway policy checks the value exactly as the real one will.
    anchor = _ANCHORS.get(param, {"limit": 1, "window_seconds": 1})
    try:
        RequestPolicy(**anchor, **{param: value})
    except (TypeError, ValueError, OverflowError) as exc:
        raise _fail(exc, label) from None


def _check_limiter(limiter: object) -> None:
    if not isinstance(limiter, RateLimiter):
        raise TypeError(f"`limiter` must be a RateLimiter, not {type(limiter).__name__}")


def _callable_or_none(value: Any, name: str) -> Any:
    if value is not None and not callable(value):
        raise TypeError(f"`{name}` must be callable, not {type(value).__name__}")
    return value


def _on_blocked(value: Any) -> OnBlocked | None:
    """``on_blocked`` as ``(request, decision)``; a hook of the decision alone (this
    integration's first signature) still works, with a DeprecationWarning."""
    try:
        return check_on_blocked(value)  # type: ignore[no-any-return]
    except TypeError as error:
        try:
            inspect.signature(value).bind(None)
        except (TypeError, ValueError):
            raise error from None
    warnings.warn(
        "`on_blocked` takes (request, decision) in every web integration; a hook of the "
        "decision alone is deprecated",
        DeprecationWarning,
        stacklevel=4,
    )
    hook: OnBlocked
    if inspect.iscoroutinefunction(value):

        async def hook(request: Any, decision: Decision) -> Any:
            return await value(decision)

    else:

        def hook(request: Any, decision: Decision) -> Any:
            return value(decision)

    return hook


class _LimitSpec:
    """What one ``@limiter.limit(...)`` asked for; turned into a policy per app and endpoint."""

    def __init__(
        self,
        rate: str | None = None,
        *,
        limiter: RateLimiter | None = None,
        on_blocked: OnBlocked | None = None,
        override_defaults: bool = True,
        key: str | KeyFunc | None = NOT_GIVEN,
        **settings: Unpack[RouteSettings],
    ) -> None:
        # None means "the app's", as in app.config; but headers=None means no headers.
        given: dict[str, Any] = {
            k: v for k, v in settings.items() if v is not None or k == "headers"
        }
        key_func = key_func_setting(given.pop("key_func", NOT_GIVEN), key, None, stacklevel=4)
        algorithm, burst = given.pop("algorithm", None), given.pop("burst", None)
        dynamic_limit = given.pop("dynamic_limit", None)
        if limiter is not None:
            both = {"rate": rate, "algorithm": algorithm, "burst": burst}
            clash = [name for name, value in both.items() if value is not None]
            if clash:
                raise TypeError(f"give either `limiter` or `{clash[0]}`, not both")
            _check_limiter(limiter)
        if burst is not None and algorithm is None:
            raise TypeError("`burst` on a route needs `algorithm` ('token_bucket', 'gcra', ...)")
        if rate is not None:
            try:
                RequestPolicy(rate=rate, algorithm=algorithm, burst=burst)
            except (TypeError, ValueError) as exc:
                raise _fail(exc, f"@limit({rate!r})") from None
        elif algorithm is not None:
            _validate("algorithm", algorithm, "`algorithm`")
        if key_func is not None:
            given["key_func"] = key_func
        for param, value in given.items():
            _validate(param, value, f"`{param}`")
        check_override_defaults(override_defaults)
        self.rate = rate
        self.limiter = limiter
        self.burst = burst
        self.override_defaults = override_defaults
        self.on_blocked = _on_blocked(on_blocked)
        self.dynamic_limit = _callable_or_none(dynamic_limit, "dynamic_limit")
        # Settings that override the app's; cost is 1 unless given (the default's is not shared).
        self.overrides: dict[str, Any] = {"cost": 1, **given}
        if algorithm is not None:
            self.overrides["algorithm"] = algorithm
        #: Views this spec was put on, for the error when no default limit exists for a bare one.
        self.targets: list[str] = []


_EXEMPT: Final = _LimitSpec()

#: The keyword arguments of ``FlaskRateLimiter.limit``: those of the spec it builds.
_LIMIT_SETTINGS = frozenset(setting_names(RouteSettings)) | {
    name
    for name, param in inspect.signature(_LimitSpec).parameters.items()
    if param.kind is param.KEYWORD_ONLY
}


class _AppState:
    """One app's resolved settings and its policies."""

    def __init__(
        self,
        enabled: bool,
        default: RequestPolicy | None,
        default_rate: dict[str, Any] | None,
        shared: dict[str, Any],
        on_blocked: OnBlocked | None,
    ) -> None:
        self.enabled = enabled
        self.default = default
        self.default_rate = default_rate
        self.shared = shared
        self.on_blocked = on_blocked
        self.policies: dict[tuple[str, _LimitSpec], RequestPolicy] = {}
        self.lock = threading.Lock()


def _policy_name(name: str) -> str:
    return name if name and name.isascii() and name.isprintable() else "default"


class FlaskRateLimiter:
    """Rate limits for a Flask app.

    ``FlaskRateLimiter(app, limit=100, window_seconds=60)`` counts every request against a
    default limit; ``FlaskRateLimiter(limit=...)`` then ``init_app(app)`` is the factory form.
    Every setting but ``limiter``, ``cost``, ``dynamic_limit``, ``on_blocked`` and ``clock`` can
    also come from ``app.config`` (see :data:`SETTINGS`); an argument given here wins. Without
    ``limiter``, ``rate`` or ``limit`` and ``window_seconds`` there is no default limit, and only
    the routes and blueprints given one with :meth:`limit` are counted.

    ``on_blocked(decision)`` builds the response to a refused request (the rate-limit headers and
    ``Retry-After`` are added to it); by default it is ``status_code`` with ``body``. ``name``
    names the default limit (its IETF ``RateLimit-Policy``, ``"default"`` unless given); a
    route's or blueprint's limit has its own (``limit(..., name=)``, else its endpoint's).
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        limit: int | None = None,
        window_seconds: float | None = None,
        rate: str | None = None,
        algorithm: str | None = None,
        burst: int | None = None,
        key_func: str | KeyFunc | None = None,
        headers: HeaderStyle = _UNSET,
        trusted_proxies: Iterable[str] | str | None = None,
        exempt_paths: Iterable[str] | str | None = None,
        exempt_methods: Iterable[str] | str | None = None,
        max_keys: int | None = None,
        cleanup_interval: float | None = None,
        enabled: bool | None = None,
        status_code: int | None = None,
        body: Any = None,
        limiter: RateLimiter | None = None,
        cost: CostSpec | None = None,
        dynamic_limit: DynamicLimit | None = None,
        on_blocked: OnBlocked | None = None,
        clock: ManualClock | None = None,
        reset_format: ResetFormat | None = None,
        storage: str | None = None,
        key_prefix: str | None = None,
        timeout: float | None = None,
        on_storage_error: str | None = None,
        fallback: str | None = None,
        local_deny_cache: bool | None = None,
        on_full: Literal["reject", "evict"] | None = None,
        name: str | None = None,
    ) -> None:
        given = {
            "limit": limit,
            "window_seconds": window_seconds,
            "rate": rate,
            "algorithm": algorithm,
            "burst": burst,
            "key_func": key_func,
            "headers": headers,
            "trusted_proxies": trusted_proxies,
            "exempt_paths": exempt_paths,
            "exempt_methods": exempt_methods,
            "max_keys": max_keys,
            "cleanup_interval": cleanup_interval,
            "enabled": enabled,
            "status_code": status_code,
            "body": body,
            "reset_format": reset_format,
            "storage": storage,
            "key_prefix": key_prefix,
            "timeout": timeout,
            "on_storage_error": on_storage_error,
            "fallback": fallback,
            "local_deny_cache": local_deny_cache,
            "on_full": on_full,
            "name": name,
        }
        self._given = {k: v for k, v in given.items() if v is not None and v is not _UNSET}
        if headers is None:
            self._given["headers"] = None
        for param, value in self._given.items():
            _validate(param, value, f"`{param}`")
        if limiter is not None:
            _check_limiter(limiter)
            clash = [p for p in ("rate", "limit", "window_seconds") if p in self._given]
            if clash:
                raise TypeError(f"give either `limiter` or `{clash[0]}`, not both")
        if rate is not None and (limit is not None or window_seconds is not None):
            raise TypeError("give either `rate` or `limit` and `window_seconds`, not both")
        if cost is not None:
            _validate("cost", cost, "`cost`")
        if clock is not None and not isinstance(clock, ManualClock):
            raise TypeError(f"`clock` must be a ManualClock, not {type(clock).__name__}")
        self._limiter = limiter
        self._cost = cost
        self._dynamic_limit = _callable_or_none(dynamic_limit, "dynamic_limit")
        self._on_blocked = _on_blocked(on_blocked)
        self._clock = clock
        self._specs: list[_LimitSpec] = []
        self._blueprints: dict[object, _LimitSpec] = {}  # by Blueprint
        self._exempt_blueprints: set[object] = set()
        self._environ_key = f"rust_py_rate_limit.{id(self)}"
        if app is not None:
            self.init_app(app)

    # -- setup ---------------------------------------------------------------------------------

    def init_app(self, app: Flask) -> None:
        """Read ``app.config``, check every setting and install the request hooks on ``app``."""
        states = app.extensions.setdefault(_EXTENSION, {})
        if self in states:
            raise RuntimeError("this FlaskRateLimiter is already initialised on this app")
        states[self] = self._resolve(app)
        app.before_request(self._before_request)
        app.after_request(self._after_request)

    def _resolve(self, app: Flask) -> _AppState:
        config = renamed(app.config, _DEPRECATED_CONFIG, stacklevel=4)
        check_config_keys(config)
        values: dict[str, Any] = {}
        labels: dict[str, str] = {}
        for param, key in SETTINGS.items():
            configured = config.get(key, _UNSET)
            if configured is not _UNSET and (configured is not None or param == "headers"):
                _validate(param, configured, key)
                values[param], labels[param] = configured, key
        # The constructor's rate replaces the config's: `limiter` or `rate` all of it, `limit` or
        # `window_seconds` the config's rate string (the other one may still come from config).
        rate_params = ("rate", "limit", "window_seconds")
        if self._limiter is not None or "rate" in self._given:
            replaced: tuple[str, ...] = rate_params
        elif "limit" in self._given or "window_seconds" in self._given:
            replaced = ("rate",)
        else:
            replaced = ()
        for param in replaced:
            values.pop(param, None)
        for param, value in self._given.items():
            values[param], labels[param] = value, f"`{param}`"
        if "rate" in values and ("limit" in values or "window_seconds" in values):
            other = labels.get("limit") or labels["window_seconds"]
            raise TypeError(f"give either {labels['rate']} or {other}, not both")
        if ("limit" in values) != ("window_seconds" in values):
            have, need = ("limit", "window_seconds")
            if "window_seconds" in values:
                have, need = need, have
            raise TypeError(f"{labels[have]} is set but {SETTINGS[need]} (or `{need}`) is not")

        shared = {p: values[p] for p in _SHARED if p in values}
        shared["clock"] = self._clock
        default_rate: dict[str, Any] | None = None
        if self._limiter is not None:
            default_rate = {"limiter": self._limiter}
            if "burst" in values:  # for the limiters of `dynamic_limit` rates
                default_rate["burst"] = values["burst"]
        elif "rate" in values or "limit" in values:
            default_rate = {
                p: values[p] for p in ("rate", "limit", "window_seconds", "burst") if p in values
            }
        default: RequestPolicy | None = None
        if default_rate is not None:
            involved = [labels[p] for p in (*default_rate, *shared) if p in labels]
            try:
                default = RequestPolicy(
                    **default_rate,
                    **shared,
                    cost=1 if self._cost is None else self._cost,
                    dynamic_limit=self._dynamic_limit,
                    name=values.get("name", "default"),
                )
            except (TypeError, ValueError) as exc:
                raise _fail(exc, f"the default limit ({', '.join(involved)})") from None
        else:
            stray = [labels["burst"]] if "burst" in values else []
            stray += ["`cost`"] if self._cost is not None else []
            stray += ["`dynamic_limit`"] if self._dynamic_limit is not None else []
            if stray:
                raise TypeError(
                    f"{stray[0]} applies to the default limit, which is not set (give "
                    "RATELIMIT_LIMIT and RATELIMIT_WINDOW_SECONDS, or RATELIMIT_RATE)"
                )
            bare = [
                t
                for spec in self._specs
                if spec.rate is None and spec.limiter is None
                for t in spec.targets
            ]
            if bare:
                raise ValueError(_no_default_message(bare[0]))
        return _AppState(
            values.get("enabled", True), default, default_rate, shared, self._on_blocked
        )

    # -- decorators ----------------------------------------------------------------------------

    @overload
    def limit(self, rate: _Target, /) -> _Target: ...

    @overload
    def limit(
        self,
        rate: str | None = None,
        *,
        limiter: RateLimiter | None = None,
        on_blocked: OnBlocked | None = None,
        override_defaults: bool = True,
        key: str | KeyFunc | None = ...,
        **settings: Unpack[RouteSettings],
    ) -> Callable[[_Target], _Target]: ...

    def limit(self, rate: Any = None, **settings: Any) -> Any:
        """A limit for one view (or, applied to a :class:`~flask.Blueprint`, for all its routes).

        ``rate`` is a rate string (``"10/minute"``); without it (``@limiter.limit()`` or
        ``@limiter.limit``) the view gets the default limit's rate with a counter of its own.
        ``key_func``, ``cost``, ``algorithm`` (with ``burst``), ``dynamic_limit``, ``headers``,
        ``reset_format``, ``status_code``, ``body``, ``on_blocked`` override the app's settings
        for this limit; ``limiter`` gives a :class:`RateLimiter` instead of a rate; ``methods``
        counts only those HTTP methods. The limit replaces the default limit on its routes
        unless ``override_defaults=False``.
        """
        # Named as the caller wrote it, not as the class that holds the settings.
        reject_unknown(settings, _LIMIT_SETTINGS, "FlaskRateLimiter.limit")
        if callable(rate) or isinstance(rate, Blueprint):
            return self._apply(_LimitSpec(), rate)
        spec = _LimitSpec(rate, **settings)

        def decorator(target: _Target) -> _Target:
            return self._apply(spec, target)

        return decorator

    def exempt(self, target: _Target) -> _Target:
        """Leave a view, or every route of a blueprint, out of the default and blueprint limits.

        A view in an exempt blueprint may still have a limit of its own.
        """
        return self._apply(_EXEMPT, target)

    def _apply(self, spec: _LimitSpec, target: _Target) -> _Target:
        if isinstance(target, Blueprint):
            if (spec is _EXEMPT and target in self._blueprints) or (
                spec is not _EXEMPT and target in self._exempt_blueprints
            ):
                raise TypeError(f"blueprint {target.name!r} cannot be both exempt and limited")
            if spec is _EXEMPT:
                self._exempt_blueprints.add(target)
            elif target in self._blueprints:
                raise ValueError(f"blueprint {target.name!r} already has a limit")
            else:
                self._blueprints[target] = spec
            if spec is not _EXEMPT:
                spec.targets.append(f"blueprint {target.name!r}")
                self._specs.append(spec)
            return target
        if not callable(target):
            raise TypeError(f"a limit applies to a view function or a Blueprint, not {target!r}")
        marks: tuple[tuple[FlaskRateLimiter, _LimitSpec], ...] = getattr(target, _MARK, ())
        mine = [s for owner, s in marks if owner is self]
        if mine and (spec is _EXEMPT) != (mine[0] is _EXEMPT):
            name = getattr(target, "__name__", repr(target))
            raise TypeError(f"view {name!r} cannot be both exempt and limited")
        try:
            setattr(target, _MARK, (*marks, (self, spec)))
        except AttributeError:
            raise TypeError(
                f"cannot mark {target!r}: decorate a plain function (wrap a bound method first)"
            ) from None
        if spec is not _EXEMPT:
            spec.targets.append(f"view {getattr(target, '__name__', repr(target))!r}")
            self._specs.append(spec)
        return target

    # -- requests ------------------------------------------------------------------------------

    def _policy(self, state: _AppState, spec: _LimitSpec, scope: str, name: str) -> RequestPolicy:
        policy = state.policies.get((scope, spec))
        if policy is not None:
            return policy
        with state.lock:
            policy = state.policies.get((scope, spec))
            if policy is None:
                settings = {**state.shared, **spec.overrides}
                building = {k: settings.pop(k) for k in LIMITER_SETTINGS if k in settings}
                building = {k: v for k, v in building.items() if v is not None}
                rate: dict[str, Any]
                if spec.limiter is not None:
                    rate = {"limiter": spec.limiter}
                elif spec.rate is not None and self._limiter is not None:
                    # The app's limiter is the app's storage: the route's limiter is built
                    # like it, for the route's own rate.
                    derived = self._limiter.with_rate(spec.rate, burst=spec.burst, **building)
                    rate = {"limiter": derived}
                elif spec.rate is not None:
                    rate = {"rate": spec.rate, "burst": spec.burst, **building}
                elif state.default_rate is not None:
                    rate = dict(state.default_rate)
                    if "limiter" not in rate:
                        rate.update(building)
                else:
                    raise ValueError(_no_default_message(spec.targets[0]))
                settings.setdefault("name", _policy_name(name))
                policy = RequestPolicy(
                    **rate, **settings, dynamic_limit=spec.dynamic_limit, scope=scope
                )
                state.policies[(scope, spec)] = policy
        return policy

    def _before_request(self) -> ResponseReturnValue | None:
        state: _AppState = current_app.extensions[_EXTENSION][self]
        if not state.enabled:
            return None
        req = request._get_current_object()  # type: ignore[attr-defined]
        endpoint: str | None = req.endpoint
        if endpoint is not None and (endpoint == "static" or endpoint.endswith(".static")):
            return None
        view = current_app.view_functions.get(endpoint) if endpoint is not None else None
        marks = [spec for owner, spec in getattr(view, _MARK, ()) if owner is self]
        if _EXEMPT in marks:
            return None
        blueprints = [current_app.blueprints.get(name) for name in req.blueprints]
        limits: list[tuple[RequestPolicy, _LimitSpec | None]] = []
        exempt_blueprint = any(bp in self._exempt_blueprints for bp in blueprints)
        # The view's own limits first (usually the strictest), then its blueprints' limits.
        for index, spec in enumerate(marks):
            scope = f"route:{endpoint}" + (f"#{index}" if index else "")
            limits.append((self._policy(state, spec, scope, endpoint or "default"), spec))
        if not exempt_blueprint:
            for name, bp in zip(req.blueprints, blueprints, strict=True):
                spec = self._blueprints.get(bp) if bp is not None else None
                if spec is not None:
                    limits.append((self._policy(state, spec, f"blueprint:{name}", name), spec))
        # A limit of the route's or a blueprint's own replaces the default (flask-limiter's
        # rule) unless it says override_defaults=False; one not counting this method does not.
        overridden = any(
            spec.override_defaults and not policy.exempt(req.method, req.path)
            for policy, spec in limits
            if spec is not None
        )
        if not overridden and not exempt_blueprint and state.default is not None:
            limits.append((state.default, None))
        # Count against each limit until one refuses; report the refusal, else the most
        # specific limit (the view's own first, the default last), as every integration does.
        chosen: tuple[Decision, list[tuple[str, str]], RequestPolicy, _LimitSpec | None] | None
        chosen = None
        for policy, spec in limits:
            if policy.exempt(req.method, req.path):
                continue
            decision, headers = policy.decide(req)
            if not decision.allowed:
                chosen = (decision, headers, policy, spec)
                break
            if chosen is None:
                chosen = (decision, headers, policy, spec)
        if chosen is None:
            return None
        decision, headers, policy, spec = chosen
        req.environ[self._environ_key] = headers
        if decision.allowed:
            return None
        on_blocked = spec.on_blocked if spec is not None and spec.on_blocked else state.on_blocked
        if on_blocked is not None:
            response = current_app.ensure_sync(on_blocked)(req, decision)
            if response is None:
                raise TypeError("`on_blocked` returned None; it must return a response")
            return response  # type: ignore[no-any-return]
        refusal = policy.refusal
        return current_app.response_class(
            refusal.body, status=refusal.status_code, content_type=refusal.content_type
        )

    def _after_request(self, response: Response) -> Response:
        headers: list[tuple[str, str]] | None = request.environ.get(self._environ_key)
        if headers:
            for name, value in headers:
                response.headers[name] = value
        return response


def _no_default_message(target: str) -> str:
    return (
        f"@limiter.limit() without a rate on {target} takes the default limit, which is not set: "
        "give a rate ('10/minute') or set RATELIMIT_LIMIT and RATELIMIT_WINDOW_SECONDS "
        "(or RATELIMIT_RATE)"
    )
