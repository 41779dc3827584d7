"""``@ratelimit``: a limit of its own for one view (function, class-based or async)."""

from __future__ import annotations

import functools
import threading
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar, cast

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest
from django.http.response import HttpResponseBase

from .._core import ManualClock, RateLimiter
from ..headers import HeaderStyle
from ..keys import KeyFunc
from ..policy import CostSpec, DynamicLimit, RequestPolicy, view_scope
from .responses import (
    OnBlocked,
    add_headers,
    arefuse,
    load_user,
    mark_view_headers,
    refuse,
)

__all__ = ["ratelimit"]

View = TypeVar("View", bound=Callable[..., Any])


def ratelimit(
    rate: str | None = None,
    *,
    key: str | KeyFunc = "ip",
    limit: int | None = None,
    window_seconds: float | None = None,
    limiter: RateLimiter | None = None,
    algorithm: str | None = None,
    burst: int | None = None,
    max_keys: int | None = None,
    cleanup_interval: float | None = None,
    clock: ManualClock | None = None,
    trusted_proxies: Iterable[str] | str = (),
    cost: CostSpec = 1,
    exempt_methods: Iterable[str] = (),
    dynamic_limit: DynamicLimit | None = None,
    headers: HeaderStyle = "x-ratelimit",
    name: str = "default",
    status_code: int = 429,
    body: Any = None,
    on_blocked: OnBlocked | None = None,
    scope: str | None = None,
) -> Callable[[View], View]:
    """A decorator giving a view a rate limit of its own: ``@ratelimit("5/minute", key="ip")``.

    The limit is ``rate`` (``"5/minute"``), ``limit`` and ``window_seconds``, or an existing
    ``limiter``; the other arguments are those of
    :class:`~rust_py_rate_limit.policy.RequestPolicy` (``key`` is its ``key_func``: ``"ip"``,
    ``"user"``, ``"header:<name>"`` or a callable of the request). ``on_blocked(request,
    decision)`` replaces the default refusal (429, ``{"detail": "Too many requests"}``).

    Each ``ratelimit(...)`` has its own limiter, independent of the middleware's and of other
    views'. Keys are prefixed with ``scope``, by default the view's qualified name, so one
    decorator (or one shared ``limiter``) on several views still counts each view apart; give
    the same ``scope`` to make views share a count. The view's response carries this limit's
    headers, which the middleware leaves alone. Async views get an async wrapper; class-based
    views take it through ``django.utils.decorators.method_decorator``.
    """
    if on_blocked is not None and not callable(on_blocked):
        raise TypeError(f"`on_blocked` must be callable, not {type(on_blocked).__name__}")
    if scope is not None and not isinstance(scope, str):
        raise TypeError(f"`scope` must be a str, not {type(scope).__name__}")
    # What every view's policy shares; the limiter is built once, from the rest.
    shared: dict[str, Any] = {
        "key_func": key,
        "trusted_proxies": trusted_proxies,
        "cost": cost,
        "exempt_methods": exempt_methods,
        "dynamic_limit": dynamic_limit,
        "headers": headers,
        "name": name,
        "status_code": status_code,
        "body": body,
    }
    building: dict[str, Any] = {"rate": rate, "limit": limit, "window_seconds": window_seconds}
    building |= {"algorithm": algorithm, "burst": burst, "max_keys": max_keys}
    building |= {"cleanup_interval": cleanup_interval, "clock": clock}
    # Built now, so that bad arguments fail where the view is defined.
    first = RequestPolicy(limiter, scope=scope or "", **building, **shared)
    policies: dict[str, RequestPolicy] = {first.scope: first}
    lock = threading.Lock()
    needs_user = key == "user"

    def policy_for(view: Callable[..., Any]) -> RequestPolicy:
        # method_decorator applies the decorator again on every request: reuse the policy.
        this_scope = view_scope(view) if scope is None else scope
        found = policies.get(this_scope)
        if found is None:
            with lock:
                found = policies.get(this_scope)
                if found is None:
                    found = RequestPolicy(first.limiter, scope=this_scope, **shared)
                    policies[this_scope] = found
        return found

    def decorator(view: View) -> View:
        policy = policy_for(view)

        if iscoroutinefunction(view):
            async_view = cast(Callable[..., Awaitable[HttpResponseBase]], view)

            @functools.wraps(view)
            async def async_wrapper(
                request: HttpRequest, *args: Any, **kwargs: Any
            ) -> HttpResponseBase:
                if policy.exempt(request.method or "", request.path_info):
                    return await async_view(request, *args, **kwargs)
                if needs_user:
                    await load_user(request)
                decision, extra = await policy.adecide(request)
                if decision.allowed:
                    response = await async_view(request, *args, **kwargs)
                    add_headers(response, extra)
                else:
                    response = await arefuse(policy, on_blocked, request, decision, extra)
                mark_view_headers(response)
                return response

            return cast(View, async_wrapper)

        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if policy.exempt(request.method or "", request.path_info):
                return cast(HttpResponseBase, view(request, *args, **kwargs))
            decision, extra = policy.decide(request)
            if decision.allowed:
                response = cast(HttpResponseBase, view(request, *args, **kwargs))
                add_headers(response, extra)
            else:
                response = refuse(policy, on_blocked, request, decision, extra)
            mark_view_headers(response)
            return response

        return cast(View, wrapper)

    return decorator
