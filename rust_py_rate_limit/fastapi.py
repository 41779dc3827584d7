"""Rate limiting for FastAPI: the global middleware, a per-route dependency and a decorator.

- ``app.add_middleware(RateLimitMiddleware, limit=100, window_seconds=60)``: every request
  (see :mod:`rust_py_rate_limit.starlette`).
- ``Depends(RateLimit("10/minute", key="user"))``: one route, or every route of a router via
  ``dependencies=[...]``.
- ``@limiter.limit("5/minute")`` with ``limiter = Limiter(key_func=..., headers=...)``: one
  endpoint, with the defaults the :class:`Limiter` holds.

Each per-route limit has its own limiter, apart from the middleware's, and its keys carry the
route's qualified name, so one limit per route even when they share a store.
"""

from __future__ import annotations

import enum
import functools
import inspect
import json
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast

import anyio.from_thread
from fastapi import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from ._core import ManualClock, RateLimiter
from .headers import HeaderStyle, check_style
from .keys import KeyFunc, key_func_from_spec
from .policy import CostSpec, DynamicLimit, Refusal, RequestPolicy, view_scope
from .starlette import (
    OnBlocked,
    RateLimitMiddleware,
    RawHeaders,
    blocked_response,
    check_on_blocked,
    finish_blocked,
    refusal_response,
    with_headers,
)

__all__ = [
    "Limiter",
    "OnBlocked",
    "RateLimit",
    "RateLimitMiddleware",
    "RateLimitRefused",
    "rate_limit_refused_handler",
]

F = TypeVar("F", bound=Callable[..., Any])


class _Inherit(enum.Enum):
    INHERIT = 0


#: "Take the :class:`Limiter`'s default" for settings where None is itself a value.
INHERIT = _Inherit.INHERIT


class RateLimitRefused(HTTPException):
    """Raised by :class:`RateLimit` for a refused request.

    FastAPI's default handler answers ``{"detail": detail}`` with the status and headers
    (``Retry-After`` included), which is the default refusal. ``response`` is the exact
    response configured (``body=`` or ``on_blocked=``); register
    :func:`rate_limit_refused_handler` to send it.
    """

    def __init__(
        self, status_code: int, detail: Any, headers: dict[str, str], response: Response
    ) -> None:
        super().__init__(status_code, detail, headers)
        self.response = response


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
    ``window_seconds`` work too. ``key`` is ``"ip"`` (default), ``"user"``,
    ``"header:<name>"`` or a callable of the ``Request``; the other settings are those of
    :class:`RequestPolicy`. An admitted request gets the rate-limit headers on its response
    (when the endpoint returns data rather than a ``Response`` object); a refused one raises
    :class:`RateLimitRefused` (429, ``Retry-After``).

    Keys are counted per route (prefixed with the endpoint's qualified name), so one instance
    in a router's ``dependencies=[...]`` limits each route on its own; ``scope="..."`` instead
    makes every route using the instance share one count.
    """

    def __init__(
        self,
        rate: str | RateLimiter | None = None,
        *,
        key: str | KeyFunc = "ip",
        limit: int | None = None,
        window_seconds: float | None = None,
        algorithm: str | None = None,
        burst: int | None = None,
        max_keys: int | None = None,
        cleanup_interval: float | None = None,
        clock: ManualClock | None = None,
        trusted_proxies: Iterable[str] | str = (),
        cost: CostSpec = 1,
        exempt_paths: Iterable[str] = (),
        exempt_methods: Iterable[str] = (),
        dynamic_limit: DynamicLimit | None = None,
        headers: HeaderStyle = "x-ratelimit",
        name: str = "default",
        status_code: int = 429,
        body: Any = None,
        scope: str | None = None,
        on_blocked: OnBlocked | None = None,
    ) -> None:
        limiter = None if rate is None else _check_rate(rate)
        if scope is not None and not isinstance(scope, str):
            raise TypeError(f"`scope` must be a str, not {type(scope).__name__}")
        key_func = key_func_from_spec(key, trusted_proxies=trusted_proxies)
        if scope is None:
            key_func = _per_route(key_func)
        self.policy = RequestPolicy(
            limiter,
            rate=None if limiter is not None else cast("str | None", rate),
            limit=limit,
            window_seconds=window_seconds,
            algorithm=algorithm,
            burst=burst,
            max_keys=max_keys,
            cleanup_interval=cleanup_interval,
            clock=clock,
            key_func=key_func,
            cost=cost,
            exempt_paths=exempt_paths,
            exempt_methods=exempt_methods,
            dynamic_limit=dynamic_limit,
            headers=headers,
            name=name,
            status_code=status_code,
            body=body,
            scope=scope or "",
        )
        self.on_blocked = check_on_blocked(on_blocked)
        self._detail, self._plain = _detail(self.policy.refusal)

    @property
    def limiter(self) -> RateLimiter:
        """The limiter counting this dependency's requests."""
        return self.policy.limiter

    async def __call__(self, request: Request, response: Response) -> None:
        policy = self.policy
        if policy.exempt(request.scope["method"], request.scope["path"]):
            return
        decision, headers = await policy.adecide_raw(request)
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


class Limiter:
    """Defaults for per-endpoint limits: ``@limiter.limit("5/minute")``.

    Holds the key function (``"ip"``, ``"user"``, ``"header:<name>"`` or a callable of the
    request), ``trusted_proxies``, the header style and policy ``name``, the ``algorithm``
    (and ``burst``, ``max_keys``, ``cleanup_interval``, ``clock``) of the limiters it builds,
    the refusal (``status_code``, ``body``) and ``on_blocked``. :meth:`limit` and
    :meth:`dependency` may override each of them.
    """

    def __init__(
        self,
        *,
        key_func: str | KeyFunc = "ip",
        trusted_proxies: Iterable[str] | str = (),
        headers: HeaderStyle = "x-ratelimit",
        name: str = "default",
        algorithm: str | None = None,
        burst: int | None = None,
        max_keys: int | None = None,
        cleanup_interval: float | None = None,
        clock: ManualClock | None = None,
        status_code: int = 429,
        body: Any = None,
        on_blocked: OnBlocked | None = None,
    ) -> None:
        if isinstance(trusted_proxies, str):
            trusted_proxies = [trusted_proxies]
        self.trusted_proxies = tuple(trusted_proxies)
        self.key_func = key_func_from_spec(key_func, trusted_proxies=self.trusted_proxies)
        self._key_spec = key_func
        self.headers: HeaderStyle = check_style(headers)
        self.name = name
        self.limiter_settings: dict[str, Any] = {
            "algorithm": algorithm,
            "burst": burst,
            "max_keys": max_keys,
            "cleanup_interval": cleanup_interval,
            "clock": clock,
        }
        Refusal(status_code, body)  # a bad status or body fails here, not at the first request
        self.status_code = status_code
        self.body = body
        self.on_blocked = check_on_blocked(on_blocked)

    def _policy(
        self,
        rate: str | RateLimiter,
        key: str | KeyFunc | None,
        headers: HeaderStyle | _Inherit,
        name: str | None,
        status_code: int | None,
        body: Any,
        scope: str,
        settings: dict[str, Any],
    ) -> RequestPolicy:
        limiter = _check_rate(rate)
        built = {k: v for k, v in self.limiter_settings.items() if limiter is None}
        built.update({k: v for k, v in settings.items() if v is not None})
        return RequestPolicy(
            limiter,
            rate=None if limiter is not None else cast(str, rate),
            key_func=self.key_func
            if key is None
            else key_func_from_spec(key, trusted_proxies=self.trusted_proxies),
            headers=self.headers if headers is INHERIT else headers,
            name=self.name if name is None else name,
            status_code=self.status_code if status_code is None else status_code,
            body=self.body if body is None else body,
            scope=scope,
            **built,
        )

    def limit(
        self,
        rate: str | RateLimiter,
        *,
        key: str | KeyFunc | None = None,
        cost: CostSpec = 1,
        exempt_methods: Iterable[str] = (),
        dynamic_limit: DynamicLimit | None = None,
        algorithm: str | None = None,
        burst: int | None = None,
        headers: HeaderStyle | _Inherit = INHERIT,
        name: str | None = None,
        status_code: int | None = None,
        body: Any = None,
        on_blocked: OnBlocked | None = None,
        scope: str | None = None,
    ) -> Callable[[F], F]:
        """A decorator limiting one endpoint (``async def`` or ``def``) to ``rate``.

        The endpoint may take a ``request: Request`` parameter (and a ``response: Response``);
        when it takes none the decorator asks FastAPI for them itself, and FastAPI still sees
        every parameter of the endpoint. A refused request gets the refusal response (or
        ``on_blocked(request, decision)``); an admitted one gets the rate-limit headers, on the
        ``Response`` the endpoint returns or on the one FastAPI builds. Keys are prefixed with
        the endpoint's qualified name unless ``scope`` is given.
        """
        _check_rate(rate)
        blocked = self.on_blocked if on_blocked is None else check_on_blocked(on_blocked)
        if scope is not None and not isinstance(scope, str):
            raise TypeError(f"`scope` must be a str, not {type(scope).__name__}")

        def decorate(endpoint: F) -> F:
            if not callable(endpoint):
                raise TypeError(f"`limit` decorates a function, not {type(endpoint).__name__}")
            policy = self._policy(
                rate,
                key,
                headers,
                name,
                status_code,
                body,
                view_scope(endpoint) if scope is None else scope,
                {
                    "algorithm": algorithm,
                    "burst": burst,
                    "cost": cost,
                    "exempt_methods": exempt_methods,
                    "dynamic_limit": dynamic_limit,
                },
            )
            return cast(F, _wrap_endpoint(endpoint, policy, blocked))

        return decorate

    def dependency(
        self,
        rate: str | RateLimiter,
        *,
        key: str | KeyFunc | None = None,
        cost: CostSpec = 1,
        headers: HeaderStyle | _Inherit = INHERIT,
        scope: str | None = None,
    ) -> RateLimit:
        """A :class:`RateLimit` dependency with this limiter's defaults."""
        limiter = rate if isinstance(rate, RateLimiter) else None
        settings = {} if limiter is not None else self.limiter_settings
        return RateLimit(
            rate,
            key=self._key_spec if key is None else key,
            trusted_proxies=self.trusted_proxies,
            cost=cost,
            headers=self.headers if headers is INHERIT else headers,
            name=self.name,
            status_code=self.status_code,
            body=self.body,
            scope=scope,
            on_blocked=self.on_blocked,
            **settings,
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
