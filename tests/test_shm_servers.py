"""End to end: ``storage="shm://..."`` under real multi-process servers, requests over real
sockets.

``gunicorn -w 4`` (with and without ``--preload``: workers forked from a master that opened
the table, or each opening it themselves) serves a Flask app and a Django site, and
``uvicorn --workers 4`` (workers spawned, not forked) a FastAPI app, each limited to
``10/minute`` per client. On ``shm://`` the four workers share one count: exactly 10 of 40
requests are admitted, however they spread across the workers. The same servers on
``memory://`` admit up to 10 per worker, which shows the test can tell the two apart.

Every response names the worker that served it (tests/worker_pid.py); the apps are
tests/shm_flask_app.py, tests/shm_django_site.py and tests/shm_fastapi_app.py.
"""

from __future__ import annotations

import http.client
import json
import os
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from servers import START_TIMEOUT_SECONDS, free_port, serve
from worker_pid import HEADER

TESTS = Path(__file__).resolve().parent
WORKERS = 4
LIMIT = 10  # the apps' "10/minute"
REQUESTS = 40
#: Requests in flight at once: more than the workers, so a busy worker leaves the next
#: connection to another one.
CONCURRENCY = 8


def get(port: int, path: str) -> tuple[int, int]:
    """A request on a connection of its own: the status and the pid of the worker."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status, int(response.getheader(HEADER) or "0")
    finally:
        connection.close()


def many(port: int, path: str, count: int) -> list[tuple[int, int]]:
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        return list(pool.map(lambda _: get(port, path), range(count)))


def wait_for_every_worker(port: int) -> None:
    """Until each of the workers has answered the exempt ``/pid``: requests sent before they
    are all up would go to the first few only."""
    seen: set[int] = set()
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while len(seen) < WORKERS:
        assert time.monotonic() < deadline, f"only {len(seen)} workers answered: {seen}"
        seen.update(pid for status, pid in many(port, "/pid", 2 * CONCURRENCY) if status == 200)


def storage_url(kind: str, directory: Path) -> str:
    if kind == "memory":
        return "memory://"
    # a name of its own, in a private directory of the test rather than /dev/shm
    return f"shm://servers-{uuid.uuid4().hex[:12]}?capacity=1000&path={directory}"


@pytest.fixture
def shm_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "shm"
    directory.mkdir(mode=0o700)
    return directory


def gunicorn(app: str, port: int, preload: bool) -> list[str]:
    args = ["gunicorn", "-w", str(WORKERS), "-b", f"127.0.0.1:{port}", app]
    return [*args, "--preload"] if preload else args


def uvicorn(app: str, port: int) -> list[str]:
    return [
        "uvicorn",
        "--workers",
        str(WORKERS),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        app,
    ]


def server(framework: str, port: int, preload: bool, url: str) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of ``framework``'s app on the storage ``url``."""
    if framework == "flask":
        return gunicorn("shm_flask_app:app", port, preload), {"FLASK_RATELIMIT_STORAGE_URI": url}
    if framework == "django":
        settings = json.dumps({"STORAGE": url})
        return gunicorn("shm_django_site:application", port, preload), {
            "RATE_LIMIT_SETTINGS": settings
        }
    return uvicorn("shm_fastapi_app:application", port), {
        "RATE_LIMIT_SETTINGS": json.dumps({"storage": url})
    }


SERVERS = [
    pytest.param("flask", False, id="flask-gunicorn"),
    pytest.param("flask", True, id="flask-gunicorn-preload"),
    pytest.param("django", False, id="django-gunicorn"),
    pytest.param("django", True, id="django-gunicorn-preload"),
    pytest.param("fastapi", False, id="fastapi-uvicorn"),
]


@pytest.mark.parametrize("kind", ["shm", "memory"])
@pytest.mark.parametrize(("framework", "preload"), SERVERS)
def test_workers_share_one_limit_on_shm_and_not_in_memory(
    framework: str, preload: bool, kind: str, shm_dir: Path
) -> None:
    port = free_port()
    url = storage_url(kind, shm_dir)
    args, env = server(framework, port, preload, url)
    with serve(args, port, cwd=TESTS, env=env):
        wait_for_every_worker(port)
        responses = many(port, "/", REQUESTS)
        again = get(port, "/")

    statuses = Counter(status for status, _ in responses)
    assert set(statuses) <= {200, 429}, statuses
    served_by = Counter(pid for _, pid in responses)
    assert len(served_by) >= 2, f"the requests did not spread across the workers: {served_by}"
    admitted = statuses[200]
    if kind == "shm":
        assert admitted == LIMIT, (statuses, served_by)
        assert again[0] == 429
        assert os.listdir(shm_dir), "the table is in the directory the URL names"
    else:
        # Each worker counts on its own: it admits its first 10.
        assert admitted == sum(min(LIMIT, n) for n in served_by.values()), (statuses, served_by)
        assert admitted > LIMIT
