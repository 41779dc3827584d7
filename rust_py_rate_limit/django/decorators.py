"""``@ratelimit``: a limit of its own for one view (function, class-based or async)."""

from __future__ import annotations

import functools
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from asgiref.sync import iscoroutinefunction
from django.conf import settings as django_settings
from django.http import HttpRequest
from django.http.response import HttpResponseBase

from .._core import RateLimiter
from ..keys import KeyFunc
from ..policy import (
    LIMITER_SETTINGS,
    NOT_GIVEN,
    POLICY_SETTINGS,
    RequestPolicy,
    check_on_blocked,
    check_override_defaults,
    key_func_setting,
    mark_route_limit,
    view_scope,
)
from ..settings import PolicySettings, reject_unknown
from .config import SETTING, instance_setting, storage_from_settings
from .responses import (
    OnBlocked,
    add_headers,
    arefuse,
    load_user,
    mark_view_headers,
    refuse,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["ratelimit"]

View = TypeVar("View", bound=Callable[..., Any])


def ratelimit(
    rate: str | None = None,
    *,
    limiter: RateLimiter | None = None,
    on_blocked: OnBlocked | None = None,
    scope: str | None = None,
    override_defaults: bool = True,
    key: str | KeyFunc = NOT_GIVEN,
    **settings: Unpack[PolicySettings],
) -> Callable[[View], View]:
    """A decorator giving a view a rate limit of its own: ``@ratelimit("5/minute", key="ip")``.

    The limit is ``rate`` (``"5/minute"``), ``limit`` and ``window_seconds``, or an existing
    ``limiter``; the other arguments are those of
    :class:`~rust_py_rate_limit.policy.RequestPolicy`
    (:class:`~rust_py_rate_limit.settings.PolicySettings`; ``key_func``: ``"ip"``, ``"user"``,
    ``"header:<name>"`` or a callable of the request; ``key=`` is its deprecated spelling).
    ``on_blocked(request, decision)`` replaces the default refusal (429, ``{"detail": "Too many
    requests"}``). ``methods`` counts only those HTTP methods.

    Each ``ratelimit(...)`` has its own limiter, kept where the site's limit keeps its counts:
    the storage settings given here, else those of ``RUST_PY_RATE_LIMIT`` (``STORAGE``, ...),
    else the site's ``LIMITER``'s storage, else memory. The view's requests are not counted by
    the middleware's default limit unless ``override_defaults=False``. Keys are prefixed with
    ``scope``, by default the view's qualified name, so one decorator (or one shared
    ``limiter``) on several views still counts each view apart; give the same ``scope`` to make
    views share a count. The view's response carries this limit's headers, which the
    middleware leaves alone. Async views get an async wrapper; class-based views take it
    through ``django.utils.decorators.method_decorator``.
    """
    reject_unknown(settings, POLICY_SETTINGS, "ratelimit")
    given: dict[str, Any] = dict(settings)
    key_spec = key_func_setting(given.pop("key_func", NOT_GIVEN), key)
    check_on_blocked(on_blocked)
    check_override_defaults(override_defaults)
    if scope is not None and not isinstance(scope, str):
        raise TypeError(f"`scope` must be a str, not {type(scope).__name__}")
    limit, window_seconds = given.pop("limit", None), given.pop("window_seconds", None)
    # What every view's policy shares; the limiter is built once, from the rest.
    building = {name: given.pop(name, None) for name in LIMITER_SETTINGS}
    shared: dict[str, Any] = {"key_func": key_spec, **given}
    site = _site_limiter(rate, limit, window_seconds, building) if limiter is None else None
    # Built now, so that bad arguments fail where the view is defined. A limiter given here
    # and settings to build one are a TypeError; the site's limiter is built from them.
    first = RequestPolicy(
        limiter or site,
        rate=rate if site is None else None,
        limit=limit if site is None else None,
        window_seconds=window_seconds if site is None else None,
        scope=scope or "",
        **(building if site is None else {}),
        **shared,
    )
    policies: dict[str, RequestPolicy] = {first.scope: first}
    lock = threading.Lock()
    needs_user = key_spec == "user"

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

            mark_route_limit(async_wrapper, override_defaults, policy.methods)
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

        mark_route_limit(wrapper, override_defaults, policy.methods)
        return cast(View, wrapper)

    return decorator


def _site_limiter(
    rate: str | None, limit: int | None, window: float | None, building: dict[str, Any]
) -> RateLimiter | None:
    """The view's limiter when the site's setting says where counts live and the decorator
    does not: built with the setting's storage (``STORAGE``, ``KEY_PREFIX``, ...) or like the
    site's ``LIMITER``. None when the decorator's own settings build it (memory or its own
    storage), or the site has no such setting."""
    own = {name: value for name, value in building.items() if value is not None}
    if "storage" in own:  # the decorator's own storage
        return None
    config = getattr(django_settings, SETTING, None) if django_settings.configured else None
    site_storage = storage_from_settings(config)
    if site_storage:
        settings = {**site_storage, **own}
        if rate is not None:
            return RateLimiter.from_rate(rate, **settings)
        if limit is not None and window is not None:
            return RateLimiter(limit, window, **settings)
        return None
    site = config.get("LIMITER") if isinstance(config, dict) else None
    if site is not None:
        site = instance_setting("LIMITER", site, RateLimiter, "a RateLimiter")
    if not isinstance(site, RateLimiter) or site.storage == "memory://":
        return None
    if rate is None:
        if limit is None or window is None or window != int(window):
            raise TypeError(
                f"the site's limit is {SETTING}['LIMITER'] on {site.storage}, and a view's "
                "limit is kept like it: give the view's rate as a string such as '5/minute'"
            )
        rate = f"{limit}/{int(window)} seconds"
    return site.with_rate(rate, **own)
