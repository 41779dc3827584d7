"""The ASGI app that benches/overload.py serves with uvicorn: one slow route and the variants.

``GET /`` awaits 10 ms (a database call, say) and then burns 1 ms of CPU (rendering), so one
process serves at most about a thousand requests per second however many wait on the sleep.
The environment variable ``BENCH_VARIANT`` picks the middleware in front of it, from
``MIDDLEWARES``:

- ``bare``: nothing;
- ``ratelimit``: ``RateLimitMiddleware`` with a per-client limit no run reaches;
- ``overload-8``: ``OverloadMiddleware(max_in_flight=8)`` (no queue, 503 + ``Retry-After``);
- ``overload-auto``: ``OverloadMiddleware(max_in_flight="auto")``.

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

from rust_py_rate_limit.starlette import OverloadMiddleware

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OVERLOAD_MIDDLEWARE = "rust_py_rate_limit.starlette.OverloadMiddleware"

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


def _rate_limit(app: ASGIApp) -> ASGIApp:
    from rust_py_rate_limit.starlette import RateLimitMiddleware

    # Per client (the default key, the peer's address), far more than any run sends: every
    # request is counted and admitted.
    return RateLimitMiddleware(app, limit=1_000_000_000, window_seconds=1)


def _overload_fixed(app: ASGIApp) -> ASGIApp:
    return OverloadMiddleware(app, max_in_flight=8)


def _overload_auto(app: ASGIApp) -> ASGIApp:
    return OverloadMiddleware(app, max_in_flight="auto")


#: Variant name: the function wrapping the app in its middleware (None: the bare app).
MIDDLEWARES: dict[str, Callable[[ASGIApp], ASGIApp] | None] = {
    "bare": None,
    "ratelimit": _rate_limit,
    "overload-8": _overload_fixed,
    "overload-auto": _overload_auto,
}


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
    app: ASGIApp = Starlette(routes=[Route("/", work)])
    wrap = MIDDLEWARES[variant]
    if wrap is not None:
        app = wrap(app)
    return Probe(app)


app = build(os.environ.get("BENCH_VARIANT", "bare"))
