"""End to end: examples/flask_app.py under gunicorn, requests over a real socket."""

from __future__ import annotations

import http.client

from conftest import CHECKOUT
from servers import free_port, serve

LIMIT = 3


def get(port: int, path: str) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", path)
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def test_the_example_app_under_gunicorn_refuses_the_request_over_its_limit() -> None:
    port = free_port()
    # The checkout's `rust_py_rate_limit/` has no compiled module, so the server runs from
    # examples/ (gunicorn puts its working directory first on sys.path) and imports the
    # installed package.
    args = ["gunicorn", "-b", f"127.0.0.1:{port}", "-w", "1", "flask_app:app"]
    env = {"FLASK_RATELIMIT_LIMIT": str(LIMIT)}
    with serve(args, port, cwd=CHECKOUT / "examples", env=env):
        responses = [get(port, "/") for _ in range(LIMIT + 1)]
        health = get(port, "/health")

    admitted, refused = responses[:LIMIT], responses[LIMIT]
    assert [r.status for r in admitted] == [200] * LIMIT
    assert [r.getheader("X-RateLimit-Remaining") for r in admitted] == ["2", "1", "0"]
    assert {r.getheader("X-RateLimit-Limit") for r in admitted} == {str(LIMIT)}
    assert [r.getheader("Retry-After") for r in admitted] == [None] * LIMIT
    assert admitted[0].getheader("RateLimit-Policy") == f'"default";q={LIMIT};w=60'

    assert refused.status == 429
    assert refused.getheader("Content-Type") == "application/json"
    assert refused.getheader("X-RateLimit-Limit") == str(LIMIT)
    assert refused.getheader("X-RateLimit-Remaining") == "0"
    assert 1 <= int(refused.getheader("Retry-After") or "0") <= 60
    assert refused.getheader("RateLimit") is not None

    assert health.status == 200  # exempt: still served, without headers
    assert health.getheader("X-RateLimit-Limit") is None
