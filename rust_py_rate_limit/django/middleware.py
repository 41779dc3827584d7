"""``RateLimitMiddleware``: one limit over every request, configured by ``RUST_PY_RATE_LIMIT``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest
from django.http.response import HttpResponseBase

from ..policy import overrides_defaults
from .config import SETTING, policy_from_settings, read_settings
from .responses import add_headers, arefuse, load_user, refuse, took_over

__all__ = ["RateLimitMiddleware"]

GetResponse = Callable[[HttpRequest], HttpResponseBase]
AsyncGetResponse = Callable[[HttpRequest], Awaitable[HttpResponseBase]]

#: Set on a request once the middleware has looked at its view: the headers to send, or None
#: when the default limit does not count it (a view limited on its own, an exempt request).
_SEEN = "_rust_py_rate_limit_default"


def _view_overrides(view: Any, method: str) -> bool:
    """Whether ``view`` (a function, or a class-based view's ``as_view()``) has a limit of its
    own, ``@ratelimit``, that replaces the default limit for ``method``."""
    if overrides_defaults(view, method):
        return True
    view_class = getattr(view, "view_class", None)
    if view_class is None:
        return False
    handler = getattr(view_class, method.lower(), None)
    return overrides_defaults(handler, method) or overrides_defaults(
        getattr(view_class, "dispatch", None), method
    )


class RateLimitMiddleware:
    """Counts every request against the limit of the ``RUST_PY_RATE_LIMIT`` setting.

    A refused request is answered with the refusal (429 and ``{"detail": "Too many
    requests"}`` unless configured, ``Retry-After`` always) or with ``ON_BLOCKED``'s response;
    an admitted one gets the rate-limit headers on its response. Exempt paths and methods are
    neither counted nor given headers. A view with a ``@ratelimit`` of its own is counted by
    that limit only (unless it says ``override_defaults=False``): the default limit is decided
    in ``process_view``, once Django knows the view. A request that reaches no view (a 404) is
    counted after the response is built.

    The setting is read once, when Django builds the middleware; a bad one raises
    ``ImproperlyConfigured`` naming it. Works under WSGI and ASGI: with an async handler the
    middleware is a coroutine function and decides without leaving the event loop.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: GetResponse | AsyncGetResponse) -> None:
        self.get_response = get_response
        config = getattr(settings, SETTING, None)
        if config is not None:
            config = read_settings(config)
        self.policy, self.on_blocked = policy_from_settings(config)
        # The "user" key reads request.user, which is looked up synchronously unless loaded
        # first with request.auser() in async code.
        self._needs_user = config is not None and config.get("KEY_FUNC") == "user"
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)
            # Django calls process_view in the handler's mode: a coroutine here, so that
            # deciding never hops to a thread.
            self.process_view = self._aprocess_view  # type: ignore[method-assign,assignment]

    def _counts(self, request: HttpRequest, view: Any) -> bool:
        method = request.method or ""
        return not self.policy.exempt(method, request.path_info) and not _view_overrides(
            view, method
        )

    def process_view(
        self, request: HttpRequest, view: Any, args: Any, kwargs: Any
    ) -> HttpResponseBase | None:
        setattr(request, _SEEN, None)
        if not self._counts(request, view):
            return None
        decision, headers = self.policy.decide(request)
        if not decision.allowed:
            return refuse(self.policy, self.on_blocked, request, decision, headers)
        setattr(request, _SEEN, headers)
        return None

    async def _aprocess_view(
        self, request: HttpRequest, view: Any, args: Any, kwargs: Any
    ) -> HttpResponseBase | None:
        setattr(request, _SEEN, None)
        if not self._counts(request, view):
            return None
        if self._needs_user:
            await load_user(request)
        decision, headers = await self.policy.adecide(request)
        if not decision.allowed:
            return await arefuse(self.policy, self.on_blocked, request, decision, headers)
        setattr(request, _SEEN, headers)
        return None

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        if self.async_mode:
            return self.__acall__(request)
        response = cast(GetResponse, self.get_response)(request)
        if not hasattr(request, _SEEN):  # no view was resolved (a 404): count it now
            refused = self.process_view(request, None, (), {})
            if refused is not None:
                return refused
        return self._finish(request, response)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        response = await cast(AsyncGetResponse, self.get_response)(request)
        if not hasattr(request, _SEEN):  # no view was resolved (a 404): count it now
            refused = await self._aprocess_view(request, None, (), {})
            if refused is not None:
                return refused
        return self._finish(request, response)

    def _finish(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        headers = getattr(request, _SEEN)
        if headers and not took_over(response):
            add_headers(response, headers)
        return response
