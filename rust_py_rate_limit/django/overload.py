"""``OverloadMiddleware``: at most ``MAX_IN_FLIGHT`` requests inside the Django app at once,
configured by ``RUST_PY_RATE_LIMIT["OVERLOAD"]``. Put it first in ``MIDDLEWARE``.

Per request: a permit from the concurrency limit, at once, after a wait in the queue, or shed
with ``SHED_STATUS`` (503) and ``Retry-After``; then the rest of the site. ``TIMEOUT`` is the
latency SLA, counted from the middleware's start on the request:

- under ASGI (async mode) a view that has not returned its response by then is cancelled and
  answered ``TIMEOUT_STATUS`` (408), and its permit is released as dropped;
- under WSGI (sync mode) a running view cannot be stopped, so ``TIMEOUT`` bounds the wait for a
  permit only: a request whose wait used it up is answered ``TIMEOUT_STATUS`` without running
  the view.

A streaming response holds its permit until the server has sent it (until Django closes the
response), since its view's work runs while it is sent.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, cast

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase

from .._core import ConcurrencyLimiter
from ..exceptions import Overloaded
from ..overload import OverloadPolicy
from .config import SETTING
from .overload_config import overload_policy_from_settings

__all__ = ["OverloadMiddleware"]

GetResponse = Callable[[HttpRequest], HttpResponseBase]
AsyncGetResponse = Callable[[HttpRequest], Awaitable[HttpResponseBase]]


def _hold_until_closed(response: HttpResponseBase, lease: Any) -> bool:
    """Release ``lease`` when Django closes ``response`` (after sending it), if it streams:
    True when the release was handed over to the response."""
    if not response.streaming:
        return False
    # Django calls these from response.close(), which both its WSGI and ASGI handlers call
    # once the body is sent or the client left (FileResponse uses the same list).
    response._resource_closers.append(lease.release)  # type: ignore[attr-defined]
    return True


class OverloadMiddleware:
    """Keeps a Django site fast under overload: at most ``MAX_IN_FLIGHT`` requests inside it,
    a bounded queue, load shed with 503 and ``Retry-After``, and a latency SLA.

    The settings are those of :class:`~rust_py_rate_limit.overload.OverloadPolicy`, in upper
    case under ``RUST_PY_RATE_LIMIT["OVERLOAD"]``, read once when Django builds the
    middleware; a bad one raises ``ImproperlyConfigured`` naming it. ``PRIORITY``,
    ``CONCURRENCY_KEY`` and ``ON_OVERLOADED`` get the ``HttpRequest`` (``ON_OVERLOADED`` as
    ``(request, error)`` with the :class:`Overloaded` error, returning an ``HttpResponse``;
    async allowed under ASGI).

    Works under WSGI and ASGI: with an async handler the middleware is a coroutine function,
    waits for a permit on the event loop and cancels a view past ``TIMEOUT``; with a sync one
    it waits in the request's thread (the GIL released) and ``TIMEOUT`` bounds that wait only.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: GetResponse | AsyncGetResponse) -> None:
        self.get_response = get_response
        self.policy: OverloadPolicy = overload_policy_from_settings(
            getattr(settings, SETTING, None)
        )
        self.limiter: ConcurrencyLimiter = self.policy.limiter
        self._needs_request = (
            self.policy.priority is not None or self.policy.concurrency_key is not None
        )
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def _key_and_priority(self, request: HttpRequest) -> tuple[str | None, int]:
        if not self._needs_request:
            return None, 0
        return self.policy.key_and_priority(request)

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        if self.async_mode:
            return self.__acall__(request)
        policy = self.policy
        get_response = cast(GetResponse, self.get_response)
        if policy.exempt(request.path_info):
            return get_response(request)
        arrived = policy.now()
        key, priority = self._key_and_priority(request)
        try:
            lease = self.limiter.acquire(key, priority=priority).__enter__()
        except Overloaded as error:
            return self._refuse(request, error)
        held = False
        try:
            if policy.timeout is not None and policy.now() - arrived >= policy.timeout:
                lease.release(dropped=True)
                return self._refuse(request, policy.missed_deadline(key))
            response = get_response(request)
            held = _hold_until_closed(response, lease)
            return response
        finally:
            if not held:
                lease.release()

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        policy = self.policy
        get_response = cast(AsyncGetResponse, self.get_response)
        if policy.exempt(request.path_info):
            return await get_response(request)
        arrived = policy.now()
        key, priority = self._key_and_priority(request)
        try:
            lease = await self.limiter.acquire(key, priority=priority)
        except Overloaded as error:
            return await self._arefuse(request, error)
        held = False
        try:
            if policy.timeout is None:
                response = await get_response(request)
            else:
                left = policy.timeout - (policy.now() - arrived)
                try:
                    if left <= 0:
                        raise TimeoutError
                    response = await asyncio.wait_for(get_response(request), left)
                except (TimeoutError, asyncio.TimeoutError):
                    lease.release(dropped=True)
                    return await self._arefuse(request, policy.missed_deadline(key))
            held = _hold_until_closed(response, lease)
            return response
        finally:
            if not held:
                lease.release()

    # -- refusals ------------------------------------------------------------------------------

    def _default(self, error: Overloaded) -> HttpResponse:
        refusal, extra = self.policy.refusal_for(error)
        response = HttpResponse(
            refusal.body, status=refusal.status_code, content_type=refusal.content_type
        )
        for name, value in extra:
            response[name] = value
        return response

    def _finish(self, response: object, error: Overloaded) -> HttpResponseBase:
        if not isinstance(response, HttpResponseBase):
            raise TypeError(
                f"{SETTING}['OVERLOAD']['ON_OVERLOADED'] must return an HttpResponse, "
                f"not {type(response).__name__}"
            )
        _, extra = self.policy.refusal_for(error)
        for name, value in extra:
            if name not in response:  # the hook's own values win
                response[name] = value
        return response

    def _refuse(self, request: HttpRequest, error: Overloaded) -> HttpResponseBase:
        hook = self.policy.on_overloaded
        if hook is None:
            return self._default(error)
        response = hook(request, error)
        if inspect.isawaitable(response):
            if inspect.iscoroutine(response):
                response.close()
            raise TypeError(
                f"{SETTING}['OVERLOAD']['ON_OVERLOADED'] returned an awaitable while serving a "
                "sync request; give a plain function (an async one is only awaited under ASGI)"
            )
        return self._finish(response, error)

    async def _arefuse(self, request: HttpRequest, error: Overloaded) -> HttpResponseBase:
        hook = self.policy.on_overloaded
        if hook is None:
            return self._default(error)
        response = hook(request, error)
        if inspect.isawaitable(response):
            response = await response
        return self._finish(response, error)
