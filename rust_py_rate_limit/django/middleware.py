"""``RateLimitMiddleware``: one limit over every request, configured by ``RUST_PY_RATE_LIMIT``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import cast

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest
from django.http.response import HttpResponseBase

from .config import SETTING, policy_from_settings
from .responses import add_headers, arefuse, load_user, refuse, took_over

__all__ = ["RateLimitMiddleware"]

GetResponse = Callable[[HttpRequest], HttpResponseBase]
AsyncGetResponse = Callable[[HttpRequest], Awaitable[HttpResponseBase]]


class RateLimitMiddleware:
    """Counts every request against the limit of the ``RUST_PY_RATE_LIMIT`` setting.

    A refused request is answered with the refusal (429 and ``{"detail": "Too many
    requests"}`` unless configured, ``Retry-After`` always) or with ``ON_BLOCKED``'s response;
    an admitted one gets the rate-limit headers on its response. Exempt paths and methods are
    neither counted nor given headers. Responses of views with their own ``@ratelimit`` keep
    that limit's headers.

    The setting is read once, when Django builds the middleware; a bad one raises
    ``ImproperlyConfigured`` naming it. Works under WSGI and ASGI: with an async handler the
    middleware is a coroutine function and decides without leaving the event loop.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: GetResponse | AsyncGetResponse) -> None:
        self.get_response = get_response
        config = getattr(settings, SETTING, None)
        self.policy, self.on_blocked = policy_from_settings(config)
        # The "user" key reads request.user, which is looked up synchronously unless loaded
        # first with request.auser() in async code.
        self._needs_user = isinstance(config, Mapping) and config.get("KEY") == "user"
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        if self.async_mode:
            return self.__acall__(request)
        policy = self.policy
        if policy.exempt(request.method or "", request.path_info):
            return cast(GetResponse, self.get_response)(request)
        decision, headers = policy.decide(request)
        if not decision.allowed:
            return refuse(policy, self.on_blocked, request, decision, headers)
        response = cast(GetResponse, self.get_response)(request)
        if not took_over(response):
            add_headers(response, headers)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        policy = self.policy
        get_response = cast(AsyncGetResponse, self.get_response)
        if policy.exempt(request.method or "", request.path_info):
            return await get_response(request)
        if self._needs_user:
            await load_user(request)
        decision, headers = await policy.adecide(request)
        if not decision.allowed:
            return await arefuse(policy, self.on_blocked, request, decision, headers)
        response = await get_response(request)
        if not took_over(response):
            add_headers(response, headers)
        return response
