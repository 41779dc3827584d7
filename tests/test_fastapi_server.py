"""End to end: examples/fastapi_app.py served by uvicorn, requests over a real socket."""

from __future__ import annotations

import http.client
import json
import pathlib
import shutil

from conftest import CHECKOUT
from servers import free_port, serve

LIMIT = 4


def get(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        headers = {name.lower(): value for name, value in response.getheaders()}
        return response.status, headers, response.read()
    finally:
        connection.close()


def test_example_app_under_uvicorn(tmp_path: pathlib.Path) -> None:
    # The app module is copied out of the checkout: run from the checkout, `python -m` would
    # put its `rust_py_rate_limit/` (no compiled module) ahead of the installed package.
    shutil.copy(CHECKOUT / "examples" / "fastapi_app.py", tmp_path / "fastapi_app.py")
    port = free_port()
    args = ["uvicorn", "fastapi_app:app", "--port", str(port), "--log-level", "warning"]
    with serve(args, port, cwd=tmp_path, env={"RATE_LIMIT": str(LIMIT)}):
        admitted = [get(port, "/") for _ in range(LIMIT)]
        assert [status for status, _, _ in admitted] == [200] * LIMIT
        assert [h["x-ratelimit-remaining"] for _, h, _ in admitted] == [
            str(n) for n in range(LIMIT - 1, -1, -1)
        ]
        assert all(h["x-ratelimit-limit"] == str(LIMIT) for _, h, _ in admitted)
        assert all("retry-after" not in h for _, h, _ in admitted)
        assert admitted[0][2] == b'{"hello":"world"}'

        status, headers, body = get(port, "/")
        assert status == 429
        assert json.loads(body) == {"detail": "Too many requests"}
        assert headers["content-type"] == "application/json"
        assert headers["x-ratelimit-limit"] == str(LIMIT)
        assert headers["x-ratelimit-remaining"] == "0"
        assert 1 <= int(headers["retry-after"]) <= 60
        assert 1 <= int(headers["x-ratelimit-reset"]) <= 60

        # exempt from the global limit, and still answered
        status, headers, _ = get(port, "/health")
        assert status == 200 and "x-ratelimit-limit" not in headers
