"""What RateLimitMiddleware costs an ASGI server: requests per second, bare vs limited.

A minimal Starlette app (one plain-text route), or a FastAPI app of 20 routes, served by
uvicorn on loopback (one process, ``--no-access-log --log-level warning``), driven by ``wrk``
in a second process. Variants:

- ``bare``: the one-route app alone;
- ``static-headers``: a trivial middleware adding three fixed header fields, the control that
  tells the server's cost of sending three more headers from the middleware's own;
- ``x-ratelimit``: with ``RateLimitMiddleware`` (default headers, a limit no run reaches);
- ``ietf``: the same with the IETF draft fields;
- ``overload``: with ``OverloadMiddleware(max_in_flight=1000)``, a limit wrk's connections
  never reach, so every request is admitted: what the concurrency limit costs when there is no
  overload;
- ``bare-20-routes``: a FastAPI app with 20 routes ``/items{i}/{item_id}`` (``item_id: int``),
  requested at ``/items10/42``, the middle one (the bare app the two below are measured
  against);
- ``x-ratelimit-20-routes``: that app with ``RateLimitMiddleware`` (default headers), no route
  limited on its own (the middleware's route lookup matches no path);
- ``x-ratelimit-20-routes-1-limited``: the same, but the last route, never requested, has a
  ``@Limiter().limit(...)`` of its own, so the middleware matches every request's path against
  it to tell whether the request is the default limit's.

One server per variant runs throughout; rounds of short ``wrk`` runs alternate between them
(the order reversed every other round) so that drift and bursts of other load on the machine
hit all variants alike. The table gives the median, min and max requests per second, and the
overhead against the matching bare app (``bare``, or ``bare-20-routes`` for the 20-route
variants) as the median over rounds of ``1 - variant / bare`` within the same round.

Needs ``wrk`` (Debian/Ubuntu: ``apt-get install -y wrk``; macOS: ``brew install wrk``) and
the package installed with Starlette and uvicorn (and FastAPI for the 20-route variants, as the
``test`` extra has it). Run it from outside the checkout:

    cd /tmp && /path/to/venv/bin/python /path/to/checkout/benches/asgi_overhead.py
    #   --rounds N (10)  --duration SECONDS (3)  --connections N (32)  --variants bare,ietf
    #     (each variant's bare app is added when missing)
    #   --http h11|httptools  --loop asyncio|uvloop   (uvicorn's; auto picks httptools and
    #   uvloop when installed, as `pip install 'uvicorn[standard]'` does)

With two or more cores the server is pinned to CPU 0 and wrk to CPU 1 (``taskset``).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

APP = """
import os

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route


async def hello(request):
    return PlainTextResponse("Hello, world!")


variant = os.environ["BENCH_VARIANT"]
if "-20-routes" in variant:
    from fastapi import FastAPI

    app = FastAPI()

    def item_endpoint():
        async def item(item_id: int):
            return PlainTextResponse("Hello, world!")

        return item

    for i in range(20):
        endpoint = item_endpoint()
        if i == 19 and variant.endswith("-1-limited"):
            # A limit of its own on a route no run requests: the middleware must still match
            # every request's path against this route to know the request is its own.
            from rust_py_rate_limit.fastapi import Limiter

            endpoint = Limiter().limit("5/minute")(endpoint)
        app.get(f"/items{i}/{{item_id}}")(endpoint)
else:
    app = Starlette(routes=[Route("/", hello)])

if variant == "static-headers":
    # The control: the same three header fields, fixed, without any rate limiting, to tell
    # what the server spends on sending three more headers from what the middleware costs.
    FIXED = [
        (b"x-ratelimit-limit", b"4000000000"),
        (b"x-ratelimit-remaining", b"3999999999"),
        (b"x-ratelimit-reset", b"3600"),
    ]
    inner = app

    async def app(scope, receive, send):
        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *FIXED]}
            await send(message)

        await inner(scope, receive, send_with_headers)

elif variant == "overload":
    from rust_py_rate_limit.starlette import OverloadMiddleware

    # More permits than wrk has connections: every request is admitted, none waits.
    app = OverloadMiddleware(app, max_in_flight=1000)

elif not variant.startswith("bare"):
    from rust_py_rate_limit.starlette import RateLimitMiddleware

    # Far more than any run sends: every request is admitted and counted.
    app.add_middleware(
        RateLimitMiddleware,
        limit=4_000_000_000,
        window_seconds=3600,
        headers="ietf" if variant == "ietf" else "x-ratelimit",
    )
"""

VARIANTS = (
    "bare",
    "static-headers",
    "x-ratelimit",
    "ietf",
    "overload",
    "bare-20-routes",
    "x-ratelimit-20-routes",
    "x-ratelimit-20-routes-1-limited",
)
#: The bare app each variant's overhead is measured against.
BARE = {variant: "bare-20-routes" if "-20-routes" in variant else "bare" for variant in VARIANTS}
#: The path wrk requests: the one-route app's route, or the middle one of the 20.
PATH = {variant: "/items10/42" if "-20-routes" in variant else "/" for variant in VARIANTS}
EXPECTED_HEADER = {
    "bare": None,
    "static-headers": "x-ratelimit-remaining",
    "x-ratelimit": "x-ratelimit-remaining",
    "ietf": "ratelimit",
    "overload": None,
    "bare-20-routes": None,
    "x-ratelimit-20-routes": "x-ratelimit-remaining",
    "x-ratelimit-20-routes-1-limited": "x-ratelimit-remaining",
}
LABELS = {
    "bare": "bare app",
    "static-headers": "control: 3 fixed headers added, no limiting",
    "x-ratelimit": "`RateLimitMiddleware`, x-ratelimit headers (default)",
    "ietf": "`RateLimitMiddleware`, ietf headers",
    "overload": "`OverloadMiddleware(max_in_flight=1000)`, every request admitted",
    "bare-20-routes": "bare FastAPI app, 20 routes",
    "x-ratelimit-20-routes": "20 routes, `RateLimitMiddleware`, no route limited on its own",
    "x-ratelimit-20-routes-1-limited": "20 routes, `RateLimitMiddleware`, another route limited",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pin(cpu: int) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", str(cpu)]
    return []


def wait_until_up(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the server exited; run it by hand to see why")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the server did not start in 30 s")


def get(port: int, path: str) -> tuple[int, dict[str, str]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", path)
    response = connection.getresponse()
    headers = {name.lower(): value for name, value in response.getheaders()}
    response.read()
    connection.close()
    return response.status, headers


def check_response(port: int, variant: str) -> None:
    """One request by hand: 200, and the middleware's headers when it is there (and, with a
    route limited on its own, that route's own limit in its response)."""
    status, headers = get(port, PATH[variant])
    expected = EXPECTED_HEADER[variant]
    if status != 200 or (expected is not None and expected not in headers):
        raise RuntimeError(f"{variant}: unexpected response {status} {sorted(headers)}")
    if expected is None and "x-ratelimit-remaining" in headers:
        raise RuntimeError(f"{variant}: the middleware is there")
    if variant.endswith("-1-limited"):
        status, headers = get(port, "/items19/1")
        if status != 200 or headers.get("x-ratelimit-limit") != "5":
            raise RuntimeError(f"{variant}: the limited route is not its own limit's: {headers}")


def run_wrk(port: int, path: str, seconds: int, connections: int) -> float:
    command = [
        *pin(1),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        f"http://127.0.0.1:{port}{path}",
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in output or "Socket errors" in output:
        raise RuntimeError(f"wrk saw errors:\n{output}")
    found = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if found is None:
        raise RuntimeError(f"no Requests/sec in wrk's output:\n{output}")
    return float(found.group(1))


def start_server(variant: str, app_dir: Path, args: argparse.Namespace) -> tuple[int, Any]:
    port = free_port()
    server = subprocess.Popen(
        [
            *pin(0),
            sys.executable,
            "-m",
            "uvicorn",
            "bench_app:app",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
            "--http",
            args.http,
            "--loop",
            args.loop,
        ],
        cwd=app_dir,
        env={**os.environ, "BENCH_VARIANT": variant},
        start_new_session=True,
    )
    try:
        wait_until_up(port, server)
        check_response(port, variant)
    except BaseException:
        stop(server)
        raise
    return port, server


def stop(server: subprocess.Popen[bytes]) -> None:
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--duration", type=int, default=3, help="whole seconds per run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--http", default="auto", help="uvicorn's --http: auto, h11, httptools")
    parser.add_argument("--loop", default="auto", help="uvicorn's --loop: auto, asyncio, uvloop")
    args = parser.parse_args()
    variants = [v.strip() for v in args.variants.split(",")]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"--variants: unknown {unknown}; known: {', '.join(VARIANTS)}")
    # Each variant's bare app runs too, since the overhead is measured against it.
    variants = sorted({*variants, *(BARE[v] for v in variants)}, key=VARIANTS.index)
    if shutil.which("wrk") is None:
        sys.exit(
            "wrk is not installed: apt-get install -y wrk (Debian/Ubuntu), brew install wrk "
            "(macOS), or build it from https://github.com/wg/wrk"
        )
    import uvicorn

    import rust_py_rate_limit

    print(f"rust_py_rate_limit {rust_py_rate_limit.__version__} from {rust_py_rate_limit.__file__}")
    print(
        f"uvicorn {uvicorn.__version__}, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"--http {args.http} --loop {args.loop}, "
        f"wrk -t1 -c{args.connections} -d{args.duration}s, {args.rounds} rounds"
        + (", server on CPU 0 and wrk on CPU 1" if pin(0) else "")
    )
    results: dict[str, list[float]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as servers:
        app_dir = Path(tmp)
        (app_dir / "bench_app.py").write_text(APP)
        # Every variant's server runs for the whole bench (an idle one costs nothing), so the
        # rounds can alternate quickly and a burst of other load hits all variants alike.
        ports = {}
        for variant in variants:
            port, server = start_server(variant, app_dir, args)
            servers.callback(stop, server)
            ports[variant] = port
            run_wrk(port, PATH[variant], 1, args.connections)  # warm up
        for round_number in range(args.rounds):
            order = variants if round_number % 2 == 0 else variants[::-1]
            line = []
            for variant in order:
                rps = run_wrk(ports[variant], PATH[variant], args.duration, args.connections)
                results[variant].append(rps)
                line.append(f"{variant} {rps:,.0f}")
            print(f"  round {round_number + 1}: " + ", ".join(line), flush=True)
    print()
    print(
        "| variant | median req/s | min | max "
        "| overhead vs its bare app (median of the rounds' ratios) |"
    )
    print("|---|---:|---:|---:|---:|")
    for variant in variants:
        values = results[variant]
        bare = results[BARE[variant]]
        ratios = [1 - v / b for v, b in zip(values, bare, strict=True)]
        overhead = "" if variant == BARE[variant] else f"{statistics.median(ratios) * 100:.1f}%"
        print(
            f"| {LABELS[variant]} | {statistics.median(values):,.0f} | {min(values):,.0f} "
            f"| {max(values):,.0f} | {overhead} |"
        )


if __name__ == "__main__":
    main()
