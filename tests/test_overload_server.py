"""OverloadMiddleware under a real uvicorn: shedding with 503 + Retry-After, the 408 latency
SLA, and idle keep-alive connections that cost no permit (unlike ``--limit-concurrency``)."""

from __future__ import annotations

import http.client
import json
import pathlib
import threading
import time

from servers import free_port, serve

APP = """
import asyncio
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route
from rust_py_rate_limit.starlette import OverloadMiddleware

async def slow(request):
    await asyncio.sleep(float(request.query_params["s"]))
    return PlainTextResponse("done")

async def quick(request):
    return PlainTextResponse("quick")

async def inflight(request):
    return JSONResponse(guarded.limiter.stats())

app = Starlette(routes=[Route("/slow", slow), Route("/quick", quick), Route("/inflight", inflight)])
app = guarded = OverloadMiddleware(
    app, max_in_flight=2, timeout=0.4, retry_after=2, exempt_paths=["/inflight"]
)
"""


def request(connection: http.client.HTTPConnection, path: str) -> tuple[int, dict[str, str], bytes]:
    connection.request("GET", path)
    response = connection.getresponse()
    headers = {name.lower(): value for name, value in response.getheaders()}
    return response.status, headers, response.read()


def get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        return request(connection, path)
    finally:
        connection.close()


def stats(port: int) -> dict[str, int]:
    status, _, body = get(port, "/inflight")
    assert status == 200
    return dict(json.loads(body))


def test_shedding_the_sla_and_idle_connections_under_uvicorn(tmp_path: pathlib.Path) -> None:
    (tmp_path / "overload_app.py").write_text(APP)
    port = free_port()
    args = ["uvicorn", "overload_app:app", "--port", str(port), "--log-level", "warning"]
    with serve(args, port, cwd=tmp_path):
        # Five keep-alive connections, each used once and left open: no permit is held.
        idle = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(5)]
        assert [request(c, "/quick")[0] for c in idle] == [200] * 5
        assert stats(port)["in_flight"] == 0

        # Two requests inside the app take both permits; a third is shed at once.
        answers: list[int] = []
        slow = [
            threading.Thread(target=lambda: answers.append(get(port, "/slow?s=0.3")[0]))
            for _ in range(2)
        ]
        for thread in slow:
            thread.start()
        deadline = time.monotonic() + 5
        while stats(port)["in_flight"] < 2:
            assert time.monotonic() < deadline, "the slow requests never arrived"
            time.sleep(0.01)
        status, headers, body = get(port, "/quick")
        assert status == 503
        assert headers["retry-after"] == "2"
        assert json.loads(body) == {"detail": "Service overloaded, retry later"}
        # an idle keep-alive connection still works once a permit is free
        for thread in slow:
            thread.join()
        assert answers == [200, 200]
        assert request(idle[0], "/quick")[0] == 200
        for connection in idle:
            connection.close()

        # The SLA: no response started within 0.4 s -> 408, and the permit comes back.
        began = time.monotonic()
        status, headers, body = get(port, "/slow?s=3")
        assert status == 408 and time.monotonic() - began < 2.5
        assert json.loads(body) == {"detail": "Request took too long"}
        final = stats(port)
        assert (final["in_flight"], final["rejected"]) == (0, 1)
