"""The ASGI app that benches/overload.py serves with uvicorn: one slow route and the variants.

``GET /`` awaits 10 ms (a database call, say) and then burns 1 ms of CPU (rendering), so one
process serves at most about a thousand requests per second however many wait on the sleep.
The environment variable ``BENCH_VARIANT`` picks the middleware in front of it, from
``MIDDLEWARES``:

- ``bare``: nothing;
- ``ratelimit``: ``RateLimitMiddleware`` with a per-client limit no run reaches;
- ``overload-8``: ``OverloadMiddleware(max_in_flight=8)`` (no queue, 503 + ``Retry-After``);
- ``overload-auto``: ``OverloadMiddleware(max_in_flight="auto")``.

Until ``rust_py_rate_limit.starlette.OverloadMiddleware`` exists, ``overload-8`` runs a
stand-in written here (``StandInShedding``: 8 in flight, no queue, 503 + ``Retry-After: 1``)
and ``overload-auto`` is unavailable; ``OVERLOAD_MIDDLEWARE`` tells which one is in use.

Outermost, whatever the variant, ``Probe`` counts requests in flight and records when each
request reached the app and when its response ended (monotonic clock, which is the same for
every process of the machine, so the bench can line it up with its own). ``GET /_probe``
answers the count in flight, ``GET /_probe/records`` those records (and clears them), as JSON;
neither goes through the variant.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

try:
    from rust_py_rate_limit.starlette import OverloadMiddleware  # type: ignore[attr-defined]
except ImportError:
    OverloadMiddleware = None

OVERLOAD_MIDDLEWARE = (
    "rust_py_rate_limit.starlette.OverloadMiddleware"
    if OverloadMiddleware is not None
    else "the bench's stand-in (8 in flight, no queue, 503 + Retry-After)"
)

SLEEP_SECONDS = 0.010
CPU_SECONDS = 0.001


def burn(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


async def work(request: Request) -> PlainTextResponse:
    await asyncio.sleep(SLEEP_SECONDS)
    burn(CPU_SECONDS)
    return PlainTextResponse("ok")


class StandInShedding:
    """A throwaway shedding middleware: at most ``max_in_flight`` requests inside the app, the
    rest answered at once with 503 and ``Retry-After``. No queue, no timeout, no adaptation."""

    def __init__(self, app: ASGIApp, max_in_flight: int = 8, retry_after: int = 1) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self.body = b"Service Unavailable"
        self.headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(self.body)).encode()),
            (b"retry-after", str(retry_after).encode()),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            await send({"type": "http.response.start", "status": 503, "headers": self.headers})
            await send({"type": "http.response.body", "body": self.body})
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


def _rate_limit(app: ASGIApp) -> ASGIApp:
    from rust_py_rate_limit.starlette import RateLimitMiddleware

    # Per client (the default key, the peer's address), far more than any run sends: every
    # request is counted and admitted.
    return RateLimitMiddleware(app, limit=1_000_000_000, window_seconds=1)


def _overload_fixed(app: ASGIApp) -> ASGIApp:
    if OverloadMiddleware is None:
        return StandInShedding(app, max_in_flight=8)
    return OverloadMiddleware(app, max_in_flight=8)  # type: ignore[no-any-return]


def _overload_auto(app: ASGIApp) -> ASGIApp:
    if OverloadMiddleware is None:
        raise RuntimeError("overload-auto needs rust_py_rate_limit.starlette.OverloadMiddleware")
    return OverloadMiddleware(app, max_in_flight="auto")  # type: ignore[no-any-return]


#: Variant name: the function wrapping the app in its middleware (None: the bare app).
MIDDLEWARES: dict[str, Callable[[ASGIApp], ASGIApp] | None] = {
    "bare": None,
    "ratelimit": _rate_limit,
    "overload-8": _overload_fixed,
    "overload-auto": _overload_auto,
}

#: Variants that cannot run in this installation, with the reason.
UNAVAILABLE = (
    {"overload-auto": "OverloadMiddleware is not importable yet"}
    if OverloadMiddleware is None
    else {}
)


class Probe:
    """Outermost: counts requests in flight and records (reached, ended, status) per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.in_flight = 0
        self.records: list[tuple[float, float, int]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"].startswith("/_probe"):
            await self._answer(send, take_records=scope["path"] == "/_probe/records")
            return
        reached = time.monotonic()
        status = 0

        async def probing_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.in_flight += 1
        try:
            await self.app(scope, receive, probing_send)
        finally:
            self.in_flight -= 1
            self.records.append((reached, time.monotonic(), status))

    async def _answer(self, send: Send, take_records: bool) -> None:
        answer: dict[str, object] = {"in_flight": self.in_flight, "pid": os.getpid()}
        if take_records:
            answer["records"], self.records = self.records, []
        body = json.dumps(answer).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def build(variant: str) -> ASGIApp:
    if variant not in MIDDLEWARES:
        raise ValueError(f"BENCH_VARIANT={variant!r}: known {sorted(MIDDLEWARES)}")
    if variant in UNAVAILABLE:
        raise RuntimeError(f"BENCH_VARIANT={variant!r}: {UNAVAILABLE[variant]}")
    app: ASGIApp = Starlette(routes=[Route("/", work)])
    wrap = MIDDLEWARES[variant]
    if wrap is not None:
        app = wrap(app)
    return Probe(app)


app = build(os.environ.get("BENCH_VARIANT", "bare"))
