"""OverloadMiddleware (Starlette/FastAPI) through httpx's ASGI transport: shedding, the queue,
priorities, the latency SLA, the rate limit in front, and bad settings. Requests run
concurrently in one event loop; handlers wait on events, so nothing sleeps for long."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

from rust_py_rate_limit import ConcurrencyLimiter, ManualClock, Overloaded
from rust_py_rate_limit.fastapi import OverloadMiddleware as FastAPIOverloadMiddleware
from rust_py_rate_limit.starlette import OverloadMiddleware


class Gate:
    """Handlers that hold their permit until the test opens the gate."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.entered = 0

    async def held(self, request: Request) -> Response:
        self.entered += 1
        await self.open.wait()
        return PlainTextResponse("held")


async def quick(request: Request) -> Response:
    return PlainTextResponse("quick")


def build(gate: Gate, **settings: Any) -> tuple[Starlette, OverloadMiddleware]:
    async def nap(request: Request) -> Response:
        await asyncio.sleep(float(request.query_params["s"]))
        return PlainTextResponse("slept")

    async def stream(request: Request) -> Response:
        async def body() -> Any:
            yield b"first "
            await asyncio.sleep(float(request.query_params["s"]))
            yield b"second"

        return StreamingResponse(body())

    app = Starlette(
        routes=[
            Route("/held", gate.held),
            Route("/quick", quick),
            Route("/health", quick),
            Route("/nap", nap),
            Route("/stream", stream),
        ]
    )
    middleware = OverloadMiddleware(app, **settings)
    return app, middleware


def run(
    middleware: OverloadMiddleware, scenario: Callable[[httpx.AsyncClient], Awaitable[Any]]
) -> Any:
    async def main() -> Any:
        transport = httpx.ASGITransport(app=middleware)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await scenario(client)

    return asyncio.run(main())


async def until(condition: Callable[[], bool]) -> None:
    """Lets the loop run until ``condition`` holds (a bounded number of turns)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


def test_past_the_limit_requests_are_shed_at_once_with_503_and_retry_after() -> None:
    gate = Gate()
    _, middleware = build(gate, max_in_flight=2, retry_after=3)

    async def scenario(client: httpx.AsyncClient) -> Any:
        held = [asyncio.create_task(client.get("/held")) for _ in range(2)]
        await until(lambda: gate.entered == 2)
        shed = await client.get("/quick")
        assert middleware.limiter.in_flight == 2
        gate.open.set()
        return shed, await asyncio.gather(*held), await client.get("/quick")

    shed, held, after = run(middleware, scenario)
    assert shed.status_code == 503
    assert shed.headers["retry-after"] == "3"
    assert shed.json() == {"detail": "Service overloaded, retry later"}
    assert [r.status_code for r in held] == [200, 200]
    assert after.status_code == 200 and "retry-after" not in after.headers
    stats = middleware.limiter.stats()
    assert (stats["acquired"], stats["rejected"], stats["in_flight"]) == (3, 1, 0)


def test_a_queued_request_is_served_when_a_permit_frees() -> None:
    gate = Gate()
    clock = ManualClock()
    _, middleware = build(gate, max_in_flight=1, queue=1, queue_timeout=5.0, clock=clock)

    async def scenario(client: httpx.AsyncClient) -> Any:
        held = asyncio.create_task(client.get("/held"))
        await until(lambda: gate.entered == 1)
        queued = asyncio.create_task(client.get("/quick"))
        await until(lambda: middleware.limiter.queued == 1)
        full = await client.get("/quick")  # the queue holds one
        assert not queued.done()
        gate.open.set()
        return await held, await queued, full

    held, queued, full = run(middleware, scenario)
    assert (held.status_code, queued.status_code, full.status_code) == (200, 200, 503)
    assert middleware.limiter.stats()["queued_total"] == 1


def test_a_request_queued_past_queue_timeout_is_shed_when_the_clock_moves() -> None:
    gate = Gate()
    clock = ManualClock()
    _, middleware = build(gate, max_in_flight=1, queue=4, queue_timeout=2.0, clock=clock)

    async def scenario(client: httpx.AsyncClient) -> Any:
        held = asyncio.create_task(client.get("/held"))
        await until(lambda: gate.entered == 1)
        queued = asyncio.create_task(client.get("/quick"))
        await until(lambda: middleware.limiter.queued == 1)
        clock.advance(1.9)
        await asyncio.sleep(0)
        assert not queued.done()
        clock.advance(0.1)
        timed_out = await queued
        gate.open.set()
        return timed_out, await held

    timed_out, held = run(middleware, scenario)
    assert timed_out.status_code == 503 and timed_out.headers["retry-after"] == "1"
    assert held.status_code == 200
    stats = middleware.limiter.stats()
    assert (stats["timed_out"], stats["acquired"], stats["in_flight"]) == (1, 1, 0)


def test_the_more_important_request_takes_the_queue_place_of_a_less_important_one() -> None:
    gate = Gate()

    def priority(request: Request) -> int:
        return int(request.headers.get("x-priority", "0"))

    _, middleware = build(
        gate, max_in_flight=1, queue=1, queue_timeout=5.0, clock=ManualClock(), priority=priority
    )

    async def scenario(client: httpx.AsyncClient) -> Any:
        held = asyncio.create_task(client.get("/held"))
        await until(lambda: gate.entered == 1)
        low = asyncio.create_task(client.get("/quick", headers={"x-priority": "-1"}))
        await until(lambda: middleware.limiter.queued == 1)
        high = asyncio.create_task(client.get("/quick", headers={"x-priority": "5"}))
        shed = await low  # pushed out by the more important one
        equal = await client.get("/quick", headers={"x-priority": "5"})
        gate.open.set()
        return shed, equal, await high, await held

    shed, equal, high, held = run(middleware, scenario)
    assert shed.status_code == 503
    assert equal.status_code == 503, "as important as the waiter: the queue is full"
    assert (high.status_code, held.status_code) == (200, 200)


def test_exempt_paths_and_lifespan_pass_while_full() -> None:
    gate = Gate()
    _, middleware = build(gate, max_in_flight=1, exempt_paths=["/health"])

    async def scenario(client: httpx.AsyncClient) -> Any:
        held = asyncio.create_task(client.get("/held"))
        await until(lambda: gate.entered == 1)
        answers = await client.get("/health"), await client.get("/quick")
        gate.open.set()
        await held
        return answers

    health, quick_ = run(middleware, scenario)
    assert (health.status_code, quick_.status_code) == (200, 503)
    with TestClient(middleware) as client:  # lifespan startup and shutdown go through
        assert client.get("/quick").status_code == 200


def test_an_app_that_has_not_started_its_response_by_the_timeout_gets_408() -> None:
    gate = Gate()
    _, middleware = build(gate, max_in_flight=2, timeout=0.05)

    async def scenario(client: httpx.AsyncClient) -> Any:
        late = await client.get("/nap", params={"s": "5"})
        in_time = await client.get("/nap", params={"s": "0"})
        streamed = await client.get("/stream", params={"s": "0.1"})
        return late, in_time, streamed

    late, in_time, streamed = run(middleware, scenario)
    assert late.status_code == 408
    assert late.json() == {"detail": "Request took too long"}
    assert "retry-after" not in late.headers
    assert in_time.status_code == 200
    # started in time, finished after the deadline: never cut
    assert (streamed.status_code, streamed.text) == (200, "first second")
    assert middleware.limiter.in_flight == 0
    assert middleware.limiter.stats()["deadline_missed"] == 1  # the late one only


def test_time_spent_queued_counts_against_the_timeout() -> None:
    gate = Gate()
    _, middleware = build(gate, max_in_flight=1, queue=1, queue_timeout=0.2, timeout=0.2)

    async def scenario(client: httpx.AsyncClient) -> Any:
        held = asyncio.create_task(client.get("/held"))
        await until(lambda: gate.entered == 1)
        queued = asyncio.create_task(client.get("/nap", params={"s": "0.1"}))
        await until(lambda: middleware.limiter.queued == 1)
        await asyncio.sleep(0.15)
        gate.open.set()
        # alone, a 0.1 s nap fits in 0.2 s; after 0.15 s in the queue it does not
        return await queued, await held, await client.get("/nap", params={"s": "0.1"})

    queued, held, alone = run(middleware, scenario)
    assert (queued.status_code, held.status_code, alone.status_code) == (408, 200, 200)


def test_the_rate_limit_runs_first_and_answers_429() -> None:
    gate = Gate()
    _, middleware = build(
        gate, max_in_flight=1, rate="2/minute", rate_settings={"key_func": "header:x-user"}
    )

    async def scenario(client: httpx.AsyncClient) -> Any:
        first = await client.get("/quick")
        held = asyncio.create_task(client.get("/held"))
        await until(lambda: gate.entered == 1)
        limited = await client.get("/quick")  # over its rate: 429 before any permit
        gate.open.set()
        return first, await held, limited

    first, held, limited = run(middleware, scenario)
    assert (first.status_code, held.status_code, limited.status_code) == (200, 200, 429)
    assert first.headers["x-ratelimit-limit"] == "2"
    assert middleware.limiter.stats()["rejected"] == 0


def test_on_overloaded_builds_the_response_and_keeps_retry_after() -> None:
    seen: list[Overloaded] = []

    async def on_overloaded(request: Request, error: Overloaded) -> Response:
        seen.append(error)
        return JSONResponse({"busy": request.url.path, "reason": error.reason}, status_code=503)

    gate = Gate()
    _, middleware = build(gate, max_in_flight=1, on_overloaded=on_overloaded, retry_after=7)

    async def scenario(client: httpx.AsyncClient) -> Any:
        held = asyncio.create_task(client.get("/held"))
        await until(lambda: gate.entered == 1)
        shed = await client.get("/quick")
        gate.open.set()
        await held
        return shed

    shed = run(middleware, scenario)
    assert shed.json() == {"busy": "/quick", "reason": "no_permit"}
    assert shed.headers["retry-after"] == "7"
    assert seen[0].limit == 1 and seen[0].in_flight == 1


def test_custom_statuses_bodies_and_a_ready_limiter() -> None:
    gate = Gate()
    limiter = ConcurrencyLimiter(1)
    _, middleware = build(
        gate,
        concurrency=limiter,
        shed_status=429,
        body="busy",
        timeout=0.05,
        timeout_status=504,
        timeout_body={"late": True},
    )
    assert middleware.limiter is limiter

    async def scenario(client: httpx.AsyncClient) -> Any:
        held = asyncio.create_task(client.get("/held"))
        await until(lambda: gate.entered == 1)
        shed = await client.get("/quick")
        return shed, await held

    shed, held = run(middleware, scenario)
    assert (shed.status_code, shed.text) == (429, "busy")
    assert shed.headers["content-type"].startswith("text/plain")
    assert (held.status_code, held.json()) == (504, {"late": True})


def test_websockets_pass_untouched_unless_asked_then_hold_a_permit() -> None:
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(await websocket.receive_text())
        await websocket.close()

    app = Starlette(routes=[WebSocketRoute("/ws", echo)])
    limiter = ConcurrencyLimiter(1)
    for websockets, expect_close in ((False, False), (True, True)):
        middleware = OverloadMiddleware(app, concurrency=limiter, websockets=websockets)
        lease = limiter.try_acquire()
        assert lease is not None
        with TestClient(middleware) as client:
            if expect_close:
                with pytest.raises(Exception) as refused, client.websocket_connect("/ws") as ws:
                    ws.send_text("hi")
                    ws.receive_text()
                assert getattr(refused.value, "code", None) == 1013
            else:
                with client.websocket_connect("/ws") as ws:
                    ws.send_text("hi")
                    assert ws.receive_text() == "hi"
        lease.release()
    middleware = OverloadMiddleware(app, concurrency=limiter, websockets=True)
    with TestClient(middleware) as client, client.websocket_connect("/ws") as ws:
        assert limiter.in_flight == 1
        ws.send_text("hi")
        assert ws.receive_text() == "hi"
    assert limiter.in_flight == 0


def test_a_request_cancelled_from_outside_gives_its_permit_back() -> None:
    gate = Gate()
    _, middleware = build(gate, max_in_flight=1, timeout=5.0)

    async def scenario(client: httpx.AsyncClient) -> Any:
        held = asyncio.create_task(client.get("/held"))
        await until(lambda: gate.entered == 1)
        assert middleware.limiter.in_flight == 1
        held.cancel()
        with pytest.raises(asyncio.CancelledError):
            await held
        return middleware.limiter.in_flight

    assert run(middleware, scenario) == 0


def test_fastapi_exports_the_same_middleware() -> None:
    assert FastAPIOverloadMiddleware is OverloadMiddleware


@pytest.mark.parametrize(
    ("settings", "error", "message"),
    [
        ({}, TypeError, "max_in_flight"),
        ({"max_in_flight": 0}, ValueError, "`limit` must be between 1"),
        ({"max_in_flight": "many"}, ValueError, "'many'"),
        ({"max_in_flight": 2, "shed_status": 200}, ValueError, "`shed_status`"),
        ({"max_in_flight": 2, "timeout_status": "408"}, TypeError, "`timeout_status`"),
        ({"max_in_flight": 2, "timeout": 0}, ValueError, "`timeout`"),
        ({"max_in_flight": 2, "timeout": math.nan}, ValueError, "`timeout`"),
        ({"max_in_flight": 2, "timeout": math.inf}, ValueError, "`timeout`"),
        (
            {"max_in_flight": 2, "queue": 1, "queue_timeout": 2.0, "timeout": 1.0},
            ValueError,
            "`queue_timeout` (2.0) must not exceed `timeout`",
        ),
        ({"max_in_flight": 2, "retry_after": -1}, ValueError, "`retry_after`"),
        ({"max_in_flight": 2, "retry_after": 1.5}, TypeError, "`retry_after`"),
        ({"max_in_flight": 2, "priority": 3}, TypeError, "`priority`"),
        ({"max_in_flight": 2, "key_func": "ip"}, TypeError, "'key_func'"),
        ({"max_in_flight": 2, "concurrency": ConcurrencyLimiter(2)}, TypeError, "max_in_flight"),
        ({"max_in_flight": 2, "on_overloaded": lambda request: None}, TypeError, "on_overloaded"),
        ({"max_in_flight": 2, "websockets": 1}, TypeError, "`websockets`"),
        ({"max_in_flight": 2, "policy": object()}, TypeError, "`policy`"),
        ({"max_in_flight": 2, "rate_settings": {"key_func": "ip"}}, TypeError, "`rate_settings`"),
    ],
)
def test_bad_settings_are_refused_by_name(
    settings: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as raised:
        build(Gate(), **settings)
    assert message in str(raised.value)


def test_a_priority_function_returning_a_non_int_is_a_type_error() -> None:
    _, middleware = build(Gate(), max_in_flight=1, priority=lambda request: "high")
    with pytest.raises(TypeError, match="`priority` must return an int, not str"):
        run(middleware, lambda client: client.get("/quick"))
    assert json.dumps(middleware.limiter.stats()["in_flight"]) == "0"


def test_a_sync_endpoint_past_the_timeout_is_answered_408_on_time() -> None:
    import time

    def blocking(request: Request) -> Response:
        time.sleep(0.3)
        return PlainTextResponse("late")

    middleware = OverloadMiddleware(
        Starlette(routes=[Route("/", blocking)]), max_in_flight=2, timeout=0.05
    )

    async def scenario(client: httpx.AsyncClient) -> Any:
        began = time.monotonic()
        response = await client.get("/")
        return response, time.monotonic() - began

    response, took = run(middleware, scenario)
    assert response.status_code == 408
    assert took < 0.25, "answered before the thread finished"
    assert middleware.limiter.in_flight == 0
