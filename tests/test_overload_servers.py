"""End to end: Django's OverloadMiddleware and FlaskOverload under real servers, requests over
real sockets at once.

gunicorn serves with threads (``--threads 8``: requests run at the same time in one process,
sharing the limiter); uvicorn serves Django through ASGI for the 408 SLA. The apps are
tests/overload_django_site.py and tests/overload_flask_app.py: ``/hold`` keeps its permit until
``/release``, so the tests fill the limit without sleeping, and ``/status`` reports permits
held.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

from servers import free_port, serve

TESTS = Path(__file__).resolve().parent
MAX_IN_FLIGHT = 2
PATIENCE = 10.0


def get(port: int, path: str) -> tuple[int, http.client.HTTPMessage, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=PATIENCE)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def in_flight(port: int) -> int:
    status, _, body = get(port, "/status")
    assert status == 200
    return int(json.loads(body)["in_flight"])


def until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.01)


class Background:
    """A request on its own connection, in its own thread."""

    def __init__(self, port: int, path: str) -> None:
        self.result: tuple[int, http.client.HTTPMessage, bytes] | None = None
        self.thread = threading.Thread(target=self._run, args=(port, path), daemon=True)
        self.thread.start()

    def _run(self, port: int, path: str) -> None:
        self.result = get(port, path)

    def join(self) -> tuple[int, http.client.HTTPMessage, bytes]:
        self.thread.join(PATIENCE)
        assert self.result is not None, "the request never finished"
        return self.result


def fill_then_overflow(port: int, hold_path: str = "/hold") -> None:
    """Fill the limit with held requests, check that more are shed at once with 503 and
    Retry-After while the held ones wait, then release them all."""
    held = [Background(port, hold_path) for _ in range(MAX_IN_FLIGHT)]
    until(lambda: in_flight(port) == MAX_IN_FLIGHT)
    overflow = [Background(port, hold_path) for _ in range(3)]
    shed = [request.join() for request in overflow]  # answered while the held ones still wait
    assert in_flight(port) == MAX_IN_FLIGHT
    assert get(port, "/release")[0] == 200
    served = [request.join() for request in held]

    assert [status for status, _, _ in shed] == [503] * 3
    assert {headers["Retry-After"] for _, headers, _ in shed} == {"2"}
    assert {json.loads(body)["detail"] for _, _, body in shed} == {
        "Service overloaded, retry later"
    }
    assert [status for status, _, _ in served] == [200] * MAX_IN_FLIGHT
    until(lambda: in_flight(port) == 0)


def gunicorn(module: str, port: int) -> list[str]:
    return ["gunicorn", "-w", "1", "--threads", "8", "-b", f"127.0.0.1:{port}", module]


def test_django_under_gunicorn_threads_sheds_with_503_and_retry_after() -> None:
    port = free_port()
    env = {"OVERLOAD_MAX_IN_FLIGHT": str(MAX_IN_FLIGHT)}
    with serve(gunicorn("overload_django_site:application", port), port, cwd=TESTS, env=env):
        fill_then_overflow(port)


def test_flask_under_gunicorn_threads_sheds_with_503_and_retry_after() -> None:
    port = free_port()
    env = {"FLASK_RATELIMIT_OVERLOAD_MAX_IN_FLIGHT": str(MAX_IN_FLIGHT)}
    with serve(gunicorn("overload_flask_app:app", port), port, cwd=TESTS, env=env):
        fill_then_overflow(port)


def test_flask_streamed_responses_hold_their_permits_until_sent() -> None:
    port = free_port()
    env = {"FLASK_RATELIMIT_OVERLOAD_MAX_IN_FLIGHT": str(MAX_IN_FLIGHT)}
    with serve(gunicorn("overload_flask_app:app", port), port, cwd=TESTS, env=env):
        fill_then_overflow(port, "/stream")


def test_django_under_uvicorn_answers_408_past_the_timeout_and_frees_the_permit() -> None:
    port = free_port()
    env = {"OVERLOAD_MAX_IN_FLIGHT": "1", "OVERLOAD_TIMEOUT": "0.2"}
    args = ["uvicorn", "--no-access-log", "--host", "127.0.0.1", "--port", str(port)]
    with serve([*args, "overload_django_site:asgi_application"], port, cwd=TESTS, env=env):
        started = time.monotonic()
        status, headers, body = get(port, "/sleepy")
        took = time.monotonic() - started
        assert in_flight(port) == 0  # the one permit came back: the next request gets it
        again = get(port, "/sleepy")[0]

    assert status == 408
    assert json.loads(body) == {"detail": "Request took too long"}
    assert "Retry-After" not in headers
    assert took < 2.0  # the view sleeps 10 s
    assert again == 408
