"""What the middleware and the decorator share: the refusal, the headers, the async user."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase

from .._core import Decision
from ..policy import RequestPolicy

__all__ = ["OnBlocked", "add_headers", "arefuse", "load_user", "refuse", "took_over"]

#: ``ON_BLOCKED`` / ``on_blocked=``: builds the response to a refused request (may be async in
#: async code). The rate-limit headers, ``Retry-After`` included, are added to it unless it
#: sets them itself.
OnBlocked = Callable[[HttpRequest, Decision], HttpResponseBase | Awaitable[HttpResponseBase]]

#: Set on a response whose headers a per-view limit (the decorator) wrote, so the middleware
#: leaves them alone.
_VIEW_HEADERS = "_rust_py_rate_limit_view_headers"


def add_headers(response: HttpResponseBase, headers: Iterable[tuple[str, str]]) -> None:
    """Set ``headers`` on ``response``, replacing values of the same name."""
    for name, value in headers:
        response[name] = value


def mark_view_headers(response: HttpResponseBase) -> None:
    """Record that a per-view limit wrote ``response``'s rate-limit headers."""
    setattr(response, _VIEW_HEADERS, True)


def took_over(response: HttpResponseBase) -> bool:
    """Whether a per-view limit already wrote ``response``'s rate-limit headers."""
    return bool(getattr(response, _VIEW_HEADERS, False))


def _finish(response: object, headers: list[tuple[str, str]]) -> HttpResponseBase:
    if not isinstance(response, HttpResponseBase):
        raise TypeError(f"`on_blocked` must return an HttpResponse, not {type(response).__name__}")
    for name, value in headers:
        if name not in response:  # the callable's own values win
            response[name] = value
    return response


def _default(policy: RequestPolicy, headers: list[tuple[str, str]]) -> HttpResponse:
    refusal = policy.refusal
    response = HttpResponse(
        refusal.body, status=refusal.status_code, content_type=refusal.content_type
    )
    add_headers(response, headers)
    return response


def refuse(
    policy: RequestPolicy,
    on_blocked: OnBlocked | None,
    request: HttpRequest,
    decision: Decision,
    headers: list[tuple[str, str]],
) -> HttpResponseBase:
    """The response to a refused request in sync code."""
    if on_blocked is None:
        return _default(policy, headers)
    response = on_blocked(request, decision)
    if inspect.isawaitable(response):
        if inspect.iscoroutine(response):
            response.close()
        raise TypeError(
            "`on_blocked` returned an awaitable while serving a sync request; "
            "give a plain function (an async one is only awaited in async code)"
        )
    return _finish(response, headers)


async def arefuse(
    policy: RequestPolicy,
    on_blocked: OnBlocked | None,
    request: HttpRequest,
    decision: Decision,
    headers: list[tuple[str, str]],
) -> HttpResponseBase:
    """The response to a refused request in async code; an async ``on_blocked`` is awaited."""
    if on_blocked is None:
        return _default(policy, headers)
    response = on_blocked(request, decision)
    if inspect.isawaitable(response):
        response = await response
    return _finish(response, headers)


async def load_user(request: HttpRequest) -> None:
    """Resolve ``request.user`` without blocking the event loop, for the ``"user"`` key.

    ``AuthenticationMiddleware`` makes ``request.user`` a lazy object whose first use queries
    the session and user tables synchronously, which Django forbids in async code; its
    ``request.auser()`` does the same lookup asynchronously (and caches it).
    """
    auser = getattr(request, "auser", None)
    if auser is not None:
        request.user = await auser()
    elif hasattr(request, "user"):  # Django 4.2, before auser(): the lookup in a worker thread
        await sync_to_async(bool)(request.user)
