"""End to end: the example Django project under real servers, requests over a real socket.

gunicorn serves it through WSGI (the middleware's sync path), uvicorn through ASGI (its async
path). The example reads its limits from the environment, so the counts here are exact.
"""

from __future__ import annotations

import http.client
import json

import pytest
from conftest import CHECKOUT
from servers import free_port, serve

PROJECT = CHECKOUT / "examples" / "django_project"
SITE_LIMIT = 4
LOGIN_LIMIT = 2
ENV = {
    "EXAMPLE_RATE": f"{SITE_LIMIT}/minute",
    "EXAMPLE_LOGIN_RATE": f"{LOGIN_LIMIT}/minute",
    "DJANGO_SETTINGS_MODULE": "project.settings",
}

SERVERS = {
    "gunicorn-wsgi": ["gunicorn", "-w", "1", "project.wsgi:application"],
    "uvicorn-asgi": ["uvicorn", "--no-access-log", "project.asgi:application"],
}


def bind(server: str, port: int) -> list[str]:
    if server.startswith("gunicorn"):
        return ["-b", f"127.0.0.1:{port}"]
    return ["--host", "127.0.0.1", "--port", str(port)]


def get(port: int, path: str) -> tuple[int, http.client.HTTPMessage, bytes]:
    """Status, headers (looked up case-insensitively: servers differ in how they spell
    names) and body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("server", SERVERS)
def test_example_project_limits_over_a_real_socket(server: str) -> None:
    port = free_port()
    with serve([*SERVERS[server], *bind(server, port)], port, cwd=PROJECT, env=ENV):
        admitted = [get(port, "/") for _ in range(SITE_LIMIT)]
        status, headers, body = get(port, "/")
        health = [get(port, "/health") for _ in range(3)]

    assert [s for s, _, _ in admitted] == [200] * SITE_LIMIT
    assert [h["X-RateLimit-Remaining"] for _, h, _ in admitted] == [
        str(n) for n in range(SITE_LIMIT - 1, -1, -1)
    ]
    assert {h["X-RateLimit-Limit"] for _, h, _ in admitted} == {str(SITE_LIMIT)}
    assert json.loads(admitted[0][2]) == {"message": "hello"}

    assert status == 429
    assert json.loads(body) == {"detail": "Too many requests"}
    assert headers["Content-Type"] == "application/json"
    assert headers["X-RateLimit-Limit"] == str(SITE_LIMIT)
    assert headers["X-RateLimit-Remaining"] == "0"
    assert 1 <= int(headers["Retry-After"]) <= 60
    # the exempt health check is neither counted nor refused
    assert [(s, "X-RateLimit-Limit" in h) for s, h, _ in health] == [(200, False)] * 3


@pytest.mark.parametrize("server", SERVERS)
def test_example_project_view_limit(server: str) -> None:
    port = free_port()
    with serve([*SERVERS[server], *bind(server, port)], port, cwd=PROJECT, env=ENV):
        logins = [get(port, "/login") for _ in range(LOGIN_LIMIT + 1)]

    assert [s for s, _, _ in logins] == [200] * LOGIN_LIMIT + [429]
    # the view's own limit and headers
    assert [h["X-RateLimit-Limit"] for _, h, _ in logins] == [str(LOGIN_LIMIT)] * 3
    assert [h["X-RateLimit-Remaining"] for _, h, _ in logins] == ["1", "0", "0"]
    assert 1 <= int(logins[-1][1]["Retry-After"]) <= 60
