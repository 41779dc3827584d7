"""Rate limiting for any Starlette application (FastAPI included): a pure ASGI middleware.

``app.add_middleware(RateLimitMiddleware, limit=100, window_seconds=60)`` counts every HTTP
request, adds the rate-limit headers to every response it lets through and answers a refused
request itself (429, ``Retry-After``). WebSocket and lifespan traffic passes untouched. Every
setting of :class:`~rust_py_rate_limit.policy.RequestPolicy` is accepted.

A route with a limit of its own (FastAPI's ``@limiter.limit`` or ``RateLimit`` dependency) is
not counted by this default limit unless that limit says ``override_defaults=False``: the
middleware finds the route a request goes to, as the router will, before it decides.

This module needs only Starlette; :mod:`rust_py_rate_limit.fastapi` adds the per-route pieces.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._core import Decision, RateLimiter
from .headers import FIELD_NAMES
from .policy import POLICY_SETTINGS, RequestPolicy, overriding_methods
from .policy import check_on_blocked as _check_on_blocked
from .settings import PolicySettings, reject_unknown

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "OnBlocked",
    "OverloadMiddleware",
    "RateLimitMiddleware",
    "RawHeaders",
    "blocked_response",
    "check_on_blocked",
    "finish_blocked",
    "refusal_response",
    "with_headers",
]

#: Builds the response to a refused request: ``(request, decision) -> Response`` (or awaitable).
OnBlocked = Callable[[Request, Decision], "Response | Awaitable[Response]"]

RawHeaders = list[tuple[bytes, bytes]]


def with_headers(existing: Iterable[tuple[bytes, bytes]], raw: RawHeaders) -> RawHeaders:
    """``existing`` plus the fields of ``raw`` it does not set itself (so a ``Retry-After`` of
    ``on_blocked``'s own wins and no field appears twice)."""
    merged = list(existing)
    for name, _ in merged:
        if name.lower() in FIELD_NAMES:
            present = {n.lower() for n, _ in merged}
            merged.extend(h for h in raw if h[0] not in present)
            return merged
    merged.extend(raw)
    return merged


def check_on_blocked(on_blocked: object) -> OnBlocked | None:
    """``on_blocked`` checked at configuration: callable as ``(request, decision)``."""
    return _check_on_blocked(on_blocked)  # type: ignore[no-any-return]


def _own_limit_methods(route: object) -> frozenset[str]:
    """The methods for which a route's endpoint, or a dependency of it (FastAPI's, router ones
    included), has a limit that replaces the default (``"*"``: all)."""
    covered = overriding_methods(getattr(route, "endpoint", None))
    pending = list(getattr(getattr(route, "dependant", None), "dependencies", ()))
    while pending:
        dependant = pending.pop()
        covered |= overriding_methods(getattr(dependant, "call", None))
        pending.extend(getattr(dependant, "dependencies", ()))
    return covered


def _static_prefix(route: Any) -> str | None:
    """The literal start of the paths a route matches (``/items/`` of ``/items/{id}``), or None
    for a route that does not say (a Mount, a Host, ...)."""
    path_format = getattr(route, "path_format", None)
    if not isinstance(path_format, str) or not hasattr(route, "path_regex"):
        return None
    return path_format.split("{", 1)[0]


def _may_overlap(earlier: Any, route: Any) -> bool:
    """Whether some path could match both routes: their literal starts agree (one begins the
    other), or one of them does not say what it matches."""
    a, b = _static_prefix(earlier), _static_prefix(route)
    return a is None or b is None or a.startswith(b) or b.startswith(a)


def _route_path(scope: Scope) -> str:
    """The path the router matches: ``path`` without the ``root_path`` it is mounted under."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path != root and path[len(root)] == "/":
        return path[len(root) :]
    return path


class _RouteLimits:
    """Which route a request goes to, as far as the default limit cares: whether it is one
    with a limit of its own. Worked out once per routing table (again when routes are added).

    The router takes the first route that matches fully (path and method). Only the routes
    limited on their own are tried against each request, by their path pattern and methods
    (a regex match each, not ``Route.matches``, which builds a child scope and costs ~10x);
    when one matches, the routes before it are tried too, since the router would take an
    earlier match. An app with no such route pays one length check a request.
    """

    def __init__(self) -> None:
        self._app: object = None
        self._routes: list[Any] | None = None
        self._size = -1
        #: Each route limited on its own: the route, the methods its own limit covers, and the
        #: routes before it that could match a path it matches.
        self._limited: list[tuple[Any, frozenset[str], list[Any]]] = []

    def _refresh(self, routes: list[Any]) -> None:
        # FastAPI (from 0.12x) keeps an included router as one route that resolves lazily; its
        # routes, with the include's prefix and dependencies, are its effective route contexts
        # (route-like: path_regex, methods, endpoint, dependant), in the order it tries them.
        flat: list[Any] = []
        for route in routes:
            contexts = getattr(route, "effective_route_contexts", None)
            flat.extend(contexts() if callable(contexts) else [route])
        limited = ((i, _own_limit_methods(r)) for i, r in enumerate(flat))
        self._limited = [
            (flat[i], methods, [r for r in flat[:i] if _may_overlap(r, flat[i])])
            for i, methods in limited
            if methods
        ]
        self._size = len(routes)

    @staticmethod
    def _matches(route: Any, scope: Scope, path: str) -> bool:
        regex = getattr(route, "path_regex", None)
        if regex is None or not hasattr(route, "methods"):  # a Mount, a Host, ...: ask it
            match, _ = route.matches(scope)
            return match is Match.FULL
        if regex.match(path) is None:
            return False
        return route.methods is None or scope["method"] in route.methods

    def own_limit(self, scope: Scope) -> bool:
        app = scope.get("app")
        if app is not self._app:  # the app's routing table: a list the router appends to
            self._app, self._routes, self._size = app, getattr(app, "routes", None), -1
        routes = self._routes
        if not routes:
            return False
        if len(routes) != self._size:
            self._refresh(routes)
        if not self._limited:
            return False
        path = _route_path(scope)
        for route, methods, earlier in self._limited:
            if self._matches(route, scope, path):
                if any(self._matches(r, scope, path) for r in earlier):
                    return False  # the router takes an earlier route, not limited on its own
                return "*" in methods or scope["method"] in methods
        return False


def refusal_response(policy: RequestPolicy, headers: RawHeaders) -> Response:
    """The policy's refusal (429 and ``{"detail": "Too many requests"}`` by default) with the
    rate-limit headers and ``Retry-After``."""
    refusal = policy.refusal
    response = Response(refusal.body, refusal.status_code, media_type=refusal.content_type)
    response.raw_headers.extend(headers)
    return response


def finish_blocked(result: object, headers: RawHeaders) -> Response:
    """``on_blocked``'s response, checked, with the rate-limit headers it does not set itself."""
    if not isinstance(result, Response):
        raise TypeError(
            f"`on_blocked` must return a starlette Response, not {type(result).__name__}"
        )
    result.raw_headers[:] = with_headers(result.raw_headers, headers)
    return result


async def blocked_response(
    policy: RequestPolicy,
    on_blocked: OnBlocked | None,
    request: Request,
    decision: Decision,
    headers: RawHeaders,
) -> Response:
    """The response to a refused request, rate-limit headers and ``Retry-After`` included:
    ``on_blocked(request, decision)`` if given (awaited when it returns an awaitable), else
    the policy's refusal."""
    if on_blocked is None:
        return refusal_response(policy, headers)
    result = on_blocked(request, decision)
    if inspect.isawaitable(result):
        result = await result
    return finish_blocked(result, headers)


class RateLimitMiddleware:
    """Counts every HTTP request against one :class:`RequestPolicy`.

    Give ``limiter`` (a :class:`RateLimiter`), or ``rate`` (``"100/minute"``), or ``limit`` and
    ``window_seconds``; the other settings are those of :class:`RequestPolicy`
    (:class:`~rust_py_rate_limit.settings.PolicySettings`: ``key_func`` receives a
    ``starlette.requests.Request``; ``storage`` and its options put the counts on Redis).
    ``on_blocked(request, decision)`` builds a custom response for refused requests (sync or
    async); the rate-limit headers and ``Retry-After`` are added to it. ``policy=`` takes a
    ready :class:`RequestPolicy` instead (and no setting besides). Requests to a route limited
    on its own are left to that limit (see the module's documentation).
    """

    def __init__(
        self,
        app: ASGIApp,
        limiter: RateLimiter | None = None,
        *,
        rate: str | None = None,
        scope: str = "",
        on_blocked: OnBlocked | None = None,
        policy: RequestPolicy | None = None,
        **settings: Unpack[PolicySettings],
    ) -> None:
        reject_unknown(settings, POLICY_SETTINGS, "RateLimitMiddleware")
        if policy is None:
            policy = RequestPolicy(limiter, rate=rate, scope=scope, **settings)
        elif not isinstance(policy, RequestPolicy):
            raise TypeError(f"`policy` must be a RequestPolicy, not {type(policy).__name__}")
        elif limiter is not None or rate is not None or scope or settings:
            both = "limiter" if limiter is not None else "rate" if rate is not None else None
            both = both or ("scope" if scope else sorted(settings)[0])
            raise TypeError(f"give either `policy` or the settings to build one, not both ({both})")
        self.app = app
        self.policy = policy
        self.on_blocked = check_on_blocked(on_blocked)
        self._route_limits = _RouteLimits()
        refusal = policy.refusal
        self._refusal_headers: RawHeaders = [
            (b"content-type", refusal.content_type.encode("latin-1")),
            (b"content-length", str(len(refusal.body)).encode("latin-1")),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # websocket, lifespan
            await self.app(scope, receive, send)
            return
        policy = self.policy
        if policy.exempt(scope["method"], scope["path"]) or self._route_limits.own_limit(scope):
            await self.app(scope, receive, send)
            return
        # The built-in key functions read the scope itself: no Request to build for them.
        decision, headers = await policy.adecide_raw(
            scope if policy.accepts_asgi_scope else Request(scope)
        )
        if not decision.allowed:
            await self._refuse(Request(scope), decision, headers, receive, send)
            return
        if not headers:  # headers=None
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = message.get("headers", ())
                for name, _ in response_headers:
                    if name.lower() in FIELD_NAMES:
                        # A per-route limit set its fields, the more specific limit: they
                        # stay alone.
                        break
                else:  # a new list: the response's own stays as it was
                    message["headers"] = [*response_headers, *headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _refuse(
        self,
        request: Request,
        decision: Decision,
        headers: RawHeaders,
        receive: Receive,
        send: Send,
    ) -> None:
        if self.on_blocked is not None:
            response = await blocked_response(
                self.policy, self.on_blocked, request, decision, headers
            )
            await response(request.scope, receive, send)
            return
        refusal = self.policy.refusal
        await send(
            {
                "type": "http.response.start",
                "status": refusal.status_code,
                "headers": self._refusal_headers + headers,
            }
        )
        await send({"type": "http.response.body", "body": refusal.body})


from .starlette_overload import OverloadMiddleware  # noqa: E402  (it builds on the above)
