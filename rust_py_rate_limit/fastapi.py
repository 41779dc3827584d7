"""Rate limiting for FastAPI: the global middleware, a per-route dependency and a decorator.

- ``app.add_middleware(RateLimitMiddleware, limit=100, window_seconds=60)``: every request
  (see :mod:`rust_py_rate_limit.starlette`).
- ``Depends(RateLimit("10/minute", key_func="user"))``: one route, or every route of a router
  via ``dependencies=[...]``.
- ``@limiter.limit("5/minute")`` with ``limiter = Limiter(key_func=..., headers=...)``: one
  endpoint, with the defaults the :class:`Limiter` holds. Write it below ``@app.get(...)``.

Each per-route limit has its own limiter and its keys carry the route's qualified name, so one
limit per route even when they share a store. A route's own limit replaces the middleware's
default limit on that route; ``override_defaults=False`` counts the route against both.
"""

import functools
import inspect
import json
import sys
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar, cast

import anyio.from_thread
from fastapi import HTTPException
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Router

from ._core import Decision, RateLimiter
from .exceptions import RateLimitExceeded
from .headers import HeaderStyle, check_reset_format, check_style
from .keys import KeyFunc, key_func_from_spec
from .policy import (
    LIMITER_SETTINGS,
    NOT_GIVEN,
    POLICY_SETTINGS,
    REQUEST_SETTINGS,
    Refusal,
    RequestPolicy,
    check_override_defaults,
    key_func_setting,
    mark_route_limit,
    view_scope,
)
from .settings import (
    REQUEST_DEFAULTS,
    PolicySettings,
    RouteSettings,
    SharedSettings,
    reject_unknown,
    setting_names,
)
from .starlette import (
    OnBlocked,
    OverloadMiddleware,
    RateLimitMiddleware,
    RawHeaders,
    blocked_response,
    check_on_blocked,
    finish_blocked,
    refusal_response,
    with_headers,
)

if TYPE_CHECKING:  # this module's annotations are evaluated (FastAPI reads __call__'s)
    from typing_extensions import Unpack

__all__ = [
    "Limiter",
    "OnBlocked",
    "OverloadMiddleware",
    "RateLimit",
    "RateLimitMiddleware",
    "RateLimitRefused",
    "rate_limit_refused_handler",
]

F = TypeVar("F", bound=Callable[..., Any])


class RateLimitRefused(HTTPException, RateLimitExceeded):
    """Raised by :class:`RateLimit` for a refused request; a
    :class:`~rust_py_rate_limit.RateLimitExceeded` (``key``, ``limit``, ``remaining``,
    ``retry_after``, ``decision``) as well as FastAPI's ``HTTPException``.

    FastAPI's default handler answers ``{"detail": detail}`` with the status and headers
    (``Retry-After`` included), which is the default refusal. ``response`` is the exact
    response configured (``body=`` or ``on_blocked=``); register
    :func:`rate_limit_refused_handler` to send it.
    """

    def __init__(
        self,
        status_code: int,
        detail: Any,
        headers: dict[str, str],
        response: Response,
        *,
        key: str = "",
        decision: Decision | None = None,
    ) -> None:
        HTTPException.__init__(self, status_code, detail, headers)
        self.response = response
        self.key = key
        self.decision = decision
        self.limit = decision.limit if decision is not None else 0
        self.remaining = decision.remaining if decision is not None else 0
        self.retry_after = decision.retry_after if decision is not None else 0.0

    def __str__(self) -> str:
        return HTTPException.__str__(self)


async def rate_limit_refused_handler(request: Request, exc: Exception) -> Response:
    """Sends a :class:`RateLimitRefused`'s own response:
    ``app.add_exception_handler(RateLimitRefused, rate_limit_refused_handler)``."""
    if not isinstance(exc, RateLimitRefused):
        raise TypeError(f"expected a RateLimitRefused, not {type(exc).__name__}")
    return exc.response


def _detail(refusal: Refusal) -> tuple[Any, bool]:
    """The ``detail`` of the refusal's body, and whether ``{"detail": detail}`` is that body."""
    if refusal.content_type == "application/json":
        body = json.loads(refusal.body)
        if isinstance(body, dict) and list(body) == ["detail"]:
            return body["detail"], True
        return body, False
    return refusal.body.decode("utf-8", "replace"), False


def _check_rate(rate: object) -> RateLimiter | None:
    """The limiter if ``rate`` is one, None for a rate string, else a TypeError."""
    if isinstance(rate, RateLimiter):
        return rate
    if not isinstance(rate, str):
        raise TypeError(
            f"`rate` must be a rate string such as '10/minute' or a RateLimiter, "
            f"not {type(rate).__name__}"
        )
    return None


class RateLimit:
    """A FastAPI dependency applying one rate limit: ``Depends(RateLimit("10/minute"))``.

    The first argument is a rate string or a :class:`RateLimiter`; ``limit`` and
    ``window_seconds`` work too. ``key_func`` is ``"ip"`` (default), ``"user"``,
    ``"header:<name>"`` or a callable of the ``Request`` (``key=`` is its deprecated
    spelling); the other settings are those of :class:`RequestPolicy`, ``storage`` and its
    options included. ``methods`` limits only requests of those HTTP methods.
    ``override_defaults`` (default True) leaves the route out of the middleware's default
    limit; False counts it against both. An admitted request gets the rate-limit headers on its
    response (when the endpoint returns data rather than a ``Response`` object); a refused one
    raises :class:`RateLimitRefused` (429, ``Retry-After``).

    Keys are counted per route (prefixed with the endpoint's qualified name), so one instance
    in a router's ``dependencies=[...]`` limits each route on its own; ``scope="..."`` instead
    makes every route using the instance share one count.
    """

    def __init__(
        self,
        rate: str | RateLimiter | None = None,
        *,
        scope: str | None = None,
        on_blocked: OnBlocked | None = None,
        override_defaults: bool = True,
        key: str | KeyFunc = NOT_GIVEN,
        **settings: "Unpack[PolicySettings]",
    ) -> None:
        reject_unknown(settings, POLICY_SETTINGS, "RateLimit")
        limiter = None if rate is None else _check_rate(rate)
        if scope is not None and not isinstance(scope, str):
            raise TypeError(f"`scope` must be a str, not {type(scope).__name__}")
        given: dict[str, Any] = dict(settings)
        spec = key_func_setting(given.pop("key_func", NOT_GIVEN), key)
        per_key = key_func_from_spec(spec, trusted_proxies=given.pop("trusted_proxies", ()))
        if scope is None:
            per_key = _per_route(per_key)
        self.policy = RequestPolicy(
            limiter,
            rate=None if limiter is not None else cast("str | None", rate),
            scope=scope or "",
            key_func=per_key,
            **given,
        )
        self.on_blocked = check_on_blocked(on_blocked)
        mark_route_limit(self, override_defaults, self.policy.methods)
        self._detail, self._plain = _detail(self.policy.refusal)

    @property
    def limiter(self) -> RateLimiter:
        """The limiter counting this dependency's requests."""
        return self.policy.limiter

    async def __call__(self, request: Request, response: Response) -> None:
        policy = self.policy
        if policy.exempt(request.scope["method"], request.scope["path"]):
            return
        decision, headers, key = await policy.adecide_keyed_raw(request)
        if decision.allowed:
            response.raw_headers.extend(headers)
            return
        refused = await blocked_response(policy, self.on_blocked, request, decision, headers)
        if (self.on_blocked is not None or not self._plain) and not _has_handler(request):
            raise RuntimeError(
                "RateLimit with `on_blocked` or a custom `body` needs "
                "app.add_exception_handler(RateLimitRefused, rate_limit_refused_handler)"
            )
        raise RateLimitRefused(
            policy.refusal.status_code,
            self._detail,
            {n.decode(): v.decode() for n, v in headers},
            refused,
            key=key,
            decision=decision,
        )


def _has_handler(request: Request) -> bool:
    handlers = getattr(request.scope.get("app"), "exception_handlers", None) or {}
    return RateLimitRefused in handlers


def _per_route(key_func: KeyFunc) -> KeyFunc:
    """``key_func`` with its keys prefixed by the qualified name of the route's endpoint."""
    names: dict[object, str] = {}

    def key(request: Any) -> str:
        endpoint = request.scope.get("endpoint")
        prefix = names.get(endpoint)
        if prefix is None:
            prefix = names[endpoint] = view_scope(endpoint)
        return f"{prefix}:{key_func(request)}"

    key.__qualname__ = key.__name__ = f"per_route({getattr(key_func, '__name__', 'key')})"
    return key


#: The settings a :class:`Limiter` holds as defaults, and those each of its limits may override.
_DEFAULTS = frozenset(setting_names(SharedSettings))
_OVERRIDES = frozenset(setting_names(RouteSettings))


def _overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    """The settings a limit sets itself: None means "the :class:`Limiter`'s", but for
    ``headers``, where None means none."""
    return {k: v for k, v in overrides.items() if v is not None or k == "headers"}


class Limiter:
    """Defaults for per-endpoint limits: ``@limiter.limit("5/minute")``.

    Holds the settings its limits share (:class:`~rust_py_rate_limit.settings.SharedSettings`):
    the key function (``key_func``: ``"ip"``, ``"user"``, ``"header:<name>"`` or a callable of
    the request), ``trusted_proxies``, the header style, ``reset_format`` and policy ``name``,
    ``cost``, ``methods``, the exemptions and ``dynamic_limit``, the ``algorithm`` (and
    ``burst``, ``max_keys``, ``cleanup_interval``, ``clock``) and the storage (``storage``,
    ``key_prefix``, ``timeout``, ``on_storage_error``, ``fallback``, ``local_deny_cache``,
    ``on_full``) of the limiters it builds, the refusal (``status_code``, ``body``) and
    ``on_blocked``.
    :meth:`limit` and :meth:`dependency` may override each of them but the storage, which every
    limit of the app shares.
    """

    def __init__(
        self, *, on_blocked: OnBlocked | None = None, **defaults: "Unpack[SharedSettings]"
    ) -> None:
        reject_unknown(defaults, _DEFAULTS, "Limiter")
        given: dict[str, Any] = dict(defaults)
        request: dict[str, Any] = {**REQUEST_DEFAULTS}
        request.update((k, given[k]) for k in REQUEST_SETTINGS if k in given)
        trusted_proxies = request.pop("trusted_proxies")
        if isinstance(trusted_proxies, str):
            trusted_proxies = [trusted_proxies]
        self.trusted_proxies = tuple(trusted_proxies)
        self._key_spec = request.pop("key_func")
        self.key_func = key_func_from_spec(self._key_spec, trusted_proxies=self.trusted_proxies)
        self.headers: HeaderStyle = check_style(request["headers"])
        self.reset_format = check_reset_format(request["reset_format"])
        self.name: str = request["name"]
        self.limiter_settings: dict[str, Any] = {k: given.get(k) for k in LIMITER_SETTINGS}
        # Bad settings (a storage URL, a timeout, a cost...) fail here, not at the first request.
        RequestPolicy(rate="1/second", **given)
        Refusal(request["status_code"], request["body"])
        self.status_code: int = request["status_code"]
        self.body: Any = request["body"]
        self.on_blocked = check_on_blocked(on_blocked)
        #: The request settings of every limit, but the key function (built per limit).
        self._request = request

    def limit(
        self,
        rate: str | RateLimiter,
        *,
        scope: str | None = None,
        on_blocked: OnBlocked | None = None,
        override_defaults: bool = True,
        key: str | KeyFunc | None = NOT_GIVEN,
        **overrides: "Unpack[RouteSettings]",
    ) -> Callable[[F], F]:
        """A decorator limiting one endpoint (``async def`` or ``def``) to ``rate``; write it
        below ``@app.get(...)`` (a decorator above it would wrap a function FastAPI already
        registered, and raises a TypeError saying so).

        The endpoint may take a ``request: Request`` parameter (and a ``response: Response``);
        when it takes none the decorator asks FastAPI for them itself, and FastAPI still sees
        every parameter of the endpoint. A refused request gets the refusal response (or
        ``on_blocked(request, decision)``); an admitted one gets the rate-limit headers, on the
        ``Response`` the endpoint returns or on the one FastAPI builds. Keys are prefixed with
        the endpoint's qualified name unless ``scope`` is given. ``methods`` counts only those
        HTTP methods. The route is left out of the middleware's default limit unless
        ``override_defaults=False``. The other settings
        (:class:`~rust_py_rate_limit.settings.RouteSettings`) override the :class:`Limiter`'s.
        """
        reject_unknown(overrides, _OVERRIDES, "Limiter.limit")
        _check_rate(rate)
        check_override_defaults(override_defaults)
        settings = _overrides(dict(overrides))
        spec = key_func_setting(settings.pop("key_func", NOT_GIVEN), key, None)
        blocked = self.on_blocked if on_blocked is None else check_on_blocked(on_blocked)
        if scope is not None and not isinstance(scope, str):
            raise TypeError(f"`scope` must be a str, not {type(scope).__name__}")
        # Bad settings fail where the decorator is written, not at the first request.
        policy = self._policy(rate, spec, scope or "", settings)

        def decorate(endpoint: F) -> F:
            if not callable(endpoint):
                raise TypeError(f"`limit` decorates a function, not {type(endpoint).__name__}")
            # The code applying the decorator: `@limiter.limit(...)` runs in the same frame as
            # `@app.get(...)`, whose app or router is then one of its names.
            _refuse_registered(endpoint, sys._getframe(1))
            route_policy = policy
            if scope is None:
                route_policy = self._policy(
                    policy.limiter,
                    spec,
                    view_scope(endpoint),
                    {k: v for k, v in settings.items() if k not in ("algorithm", "burst")},
                )
            wrapper = _wrap_endpoint(endpoint, route_policy, blocked)
            mark_route_limit(wrapper, override_defaults, route_policy.methods)
            return cast(F, wrapper)

        return decorate

    def dependency(
        self,
        rate: str | RateLimiter,
        *,
        scope: str | None = None,
        override_defaults: bool = True,
        key: str | KeyFunc | None = NOT_GIVEN,
        **overrides: "Unpack[RouteSettings]",
    ) -> RateLimit:
        """A :class:`RateLimit` dependency with this limiter's defaults; the settings given
        (:class:`~rust_py_rate_limit.settings.RouteSettings`) override them."""
        reject_unknown(overrides, _OVERRIDES, "Limiter.dependency")
        settings = _overrides(dict(overrides))
        spec = key_func_setting(settings.pop("key_func", NOT_GIVEN), key, None)
        limiter = rate if isinstance(rate, RateLimiter) else None
        built: dict[str, Any] = {} if limiter is not None else dict(self.limiter_settings)
        built.update(self._request)
        built["key_func"] = self._key_spec if spec is None else spec
        built["trusted_proxies"] = self.trusted_proxies
        built.update(settings)
        return RateLimit(
            rate,
            scope=scope,
            on_blocked=self.on_blocked,
            override_defaults=override_defaults,
            **built,
        )

    def _policy(
        self,
        rate: str | RateLimiter,
        key_func: str | KeyFunc | None,
        scope: str,
        settings: dict[str, Any],
    ) -> RequestPolicy:
        limiter = _check_rate(rate)
        built = {k: v for k, v in self.limiter_settings.items() if limiter is None}
        built.update(self._request)
        built.update(settings)
        if limiter is not None:
            for setting in ("algorithm", "burst"):
                if built.get(setting) is not None:
                    raise TypeError(f"give either a RateLimiter or `{setting}`, not both")
                built.pop(setting, None)
        trusted_proxies = built.pop("trusted_proxies", self.trusted_proxies)
        if key_func is None and "trusted_proxies" not in settings:
            built["key_func"] = self.key_func
        else:
            spec = self._key_spec if key_func is None else key_func
            built["key_func"] = key_func_from_spec(spec, trusted_proxies=trusted_proxies)
        return RequestPolicy(
            limiter,
            rate=None if limiter is not None else cast(str, rate),
            scope=scope,
            **built,
        )


def _refuse_registered(endpoint: Callable[..., Any], caller: FrameType) -> None:
    """A TypeError if ``endpoint`` is already the endpoint of a route of an app or router in
    the decorating code's namespace: ``@limiter.limit`` was written above ``@app.get``, and
    FastAPI would call the function it registered, never the limited wrapper."""
    namespaces = (caller.f_locals, caller.f_globals)
    for namespace in namespaces:
        for value in list(namespace.values()):
            if not isinstance(value, Starlette | Router):
                continue
            for route in value.routes:
                if getattr(route, "endpoint", None) is endpoint:
                    path = getattr(route, "path", "?")
                    raise TypeError(
                        f"@limiter.limit(...) on {endpoint.__qualname__}() is written above "
                        f"the route decorator of {path!r}, which already registered the "
                        "function without the limit; write it below: "
                        f"@app.get({path!r}) then @limiter.limit(...) then def "
                        f"{endpoint.__name__}(...)"
                    )


_REQUEST = "_rate_limit_request"
_RESPONSE = "_rate_limit_response"


def _signature(endpoint: Callable[..., Any]) -> inspect.Signature:
    try:  # resolve string annotations in the endpoint's module, where FastAPI would
        return inspect.signature(endpoint, eval_str=True)
    except NameError:
        return inspect.signature(endpoint)


def _find(signature: inspect.Signature, kind: type) -> tuple[str | None, int | None]:
    """The parameter annotated with ``kind`` (a subclass counts), with its position."""
    for index, param in enumerate(signature.parameters.values()):
        annotation = param.annotation
        if isinstance(annotation, type) and issubclass(annotation, kind):
            positional = param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD)
            return param.name, index if positional else None
    return None, None


def _wrap_endpoint(
    endpoint: Callable[..., Any], policy: RequestPolicy, on_blocked: OnBlocked | None
) -> Callable[..., Any]:
    signature = _signature(endpoint)
    request_name, request_index = _find(signature, Request)
    response_name, _ = _find(signature, Response)
    added: list[inspect.Parameter] = []
    if request_name is None:
        added.append(
            inspect.Parameter(_REQUEST, inspect.Parameter.KEYWORD_ONLY, annotation=Request)
        )
    if response_name is None:
        added.append(
            inspect.Parameter(_RESPONSE, inspect.Parameter.KEYWORD_ONLY, annotation=Response)
        )
    params = list(signature.parameters.values())
    var_keyword = [p for p in params if p.kind is inspect.Parameter.VAR_KEYWORD]
    params = [p for p in params if p.kind is not inspect.Parameter.VAR_KEYWORD]
    wrapped_signature = signature.replace(parameters=[*params, *added, *var_keyword])

    def arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any]:
        if request_name is None:
            request = kwargs.pop(_REQUEST)
        elif request_name in kwargs:
            request = kwargs[request_name]
        elif request_index is not None and request_index < len(args):
            request = args[request_index]
        else:
            raise TypeError(f"{endpoint.__qualname__}() was called without its request")
        response = kwargs.pop(_RESPONSE, None) if response_name is None else None
        if response_name is not None:
            response = kwargs.get(response_name)
        return request, response

    def admitted(result: Any, response: Any, headers: RawHeaders) -> Any:
        if isinstance(result, Response):  # FastAPI sends it as is: the headers go on it
            result.raw_headers[:] = with_headers(result.raw_headers, headers)
        elif isinstance(response, Response):
            response.raw_headers.extend(headers)
        return result

    wrapper: Callable[..., Any]
    if inspect.iscoroutinefunction(endpoint):

        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            request, response = arguments(args, kwargs)
            if policy.exempt(request.scope["method"], request.scope["path"]):
                return await endpoint(*args, **kwargs)
            decision, headers = await policy.adecide_raw(request)
            if not decision.allowed:
                return await blocked_response(policy, on_blocked, request, decision, headers)
            return admitted(await endpoint(*args, **kwargs), response, headers)

        wrapper = async_wrapper
    else:

        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            request, response = arguments(args, kwargs)
            if policy.exempt(request.scope["method"], request.scope["path"]):
                return endpoint(*args, **kwargs)
            decision, headers = policy.decide_raw(request)
            if not decision.allowed:
                if on_blocked is None:
                    return refusal_response(policy, headers)
                result = on_blocked(request, decision)
                if inspect.isawaitable(result):  # FastAPI runs sync endpoints in a worker thread
                    awaitable = result

                    async def wait() -> Any:
                        return await awaitable

                    result = anyio.from_thread.run(wait)
                return finish_blocked(result, headers)
            return admitted(endpoint(*args, **kwargs), response, headers)

        wrapper = sync_wrapper
    functools.update_wrapper(wrapper, endpoint)
    cast(Any, wrapper).__signature__ = wrapped_signature  # what FastAPI reads
    return wrapper
