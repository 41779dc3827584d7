"""A small open-loop HTTP load generator: a new connection per request, latency per status.

Two shapes of load:

- ``open_loop(rate, duration)``: request ``i`` is due at ``start + i / rate``, whether or not
  the earlier ones were answered (open loop: a slow server does not slow the arrivals down, so
  the queueing it causes is measured, not hidden). Its latency runs from the moment it was due,
  so any lag of the generator itself counts against the server, never for it; the lag is
  recorded too (``launch lag``), to show the generator kept up.
- ``burst(n)``: ``n`` connections opened at once; each latency runs from the burst's start.

Each request opens a new TCP connection, sends ``GET path HTTP/1.1``, reads the status line and
the header block, parses ``Content-Length`` (or a chunked body) and stops the clock at the
last byte of the body, not at the close, then closes the connection. A request that gets no
complete response is a client error, by kind: ``refused`` (connect refused), ``reset``
(connection reset), ``eof`` (closed before the whole response came), ``timeout`` (nothing
complete within the timeout), or the ``errno`` name of another OSError.

The generator runs on asyncio with uvloop when it is installed, with plain protocol callbacks
(no streams) and one task per request. ``processes > 1`` splits the load over that many
processes (interleaved arrivals), each pinned to the given CPUs when asked.

As a script, it drives a URL, or with ``--self-test`` measures itself against a trivial server
(a raw asyncio protocol answering at once), to show it is not the bottleneck at the rates the
overload bench uses:

    python benches/loadgen.py http://127.0.0.1:8000/ --rate 1000 --duration 3
    python benches/loadgen.py http://127.0.0.1:8000/ --burst 1500
    python benches/loadgen.py --self-test        # rates up to 8,000 req/s, server on CPU 0
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import math
import multiprocessing
import os
import resource
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from local_server import free_port, wait_for_port

#: One request's outcome: an HTTP status code (int) or a client error's kind (str), its latency
#: in seconds (to the last byte of the body, or to the error), whether the response carried
#: ``Retry-After``, the launch lag in seconds (how late the generator started it) and the
#: monotonic time it was due.
Record = tuple["int | str", float, bool, float, float]


def raise_fd_limit() -> None:
    """Lift the soft limit on open files to the hard one: a burst holds one socket per request."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class _Exchange(asyncio.Protocol):
    """One request on one fresh connection: write it, read one response, close."""

    __slots__ = (
        "body_end",
        "buffer",
        "chunked",
        "done",
        "has_retry_after",
        "request",
        "status",
        "transport",
    )

    def __init__(self, request: bytes, done: asyncio.Future[tuple[int | str, float, bool]]):
        self.request = request
        self.done = done
        self.buffer = bytearray()
        self.body_end = -1  # index one past the body's last byte, once the head is parsed
        self.chunked = False
        self.status = 0
        self.has_retry_after = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if self.body_end < 0:
            head_end = buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            self._parse_head(bytes(buffer[:head_end]), head_end + 4)
        if self.chunked:
            if buffer.endswith(b"0\r\n\r\n", self.body_end):
                self._finish()
        elif self.body_end >= 0 and len(buffer) >= self.body_end:
            self._finish()

    def _parse_head(self, head: bytes, body_start: int) -> None:
        lines = head.split(b"\r\n")
        self.status = int(lines[0].split(b" ", 2)[1])
        length = None
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                self.chunked = True
            elif name == b"retry-after":
                self.has_retry_after = True
        if self.chunked:
            self.body_end = body_start
        elif length is not None:
            self.body_end = body_start + length
        # Neither: the body runs to the close (connection_lost finishes it then).

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result((self.status, time.monotonic(), self.has_retry_after))
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done.done():
            return
        now = time.monotonic()
        if self.status and self.body_end < 0 and not self.chunked and exc is None:
            # A response without a length: its body ended with the connection.
            self.done.set_result((self.status, now, self.has_retry_after))
        elif exc is not None and isinstance(exc, ConnectionResetError):
            self.done.set_result(("reset", now, False))
        else:
            self.done.set_result(("eof", now, False))


def _error_kind(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, ConnectionResetError):
        return "reset"
    if isinstance(exc, OSError) and exc.errno is not None:
        return errno.errorcode.get(exc.errno, f"errno{exc.errno}")
    return type(exc).__name__


async def _one(
    loop: asyncio.AbstractEventLoop,
    host: str,
    port: int,
    request: bytes,
    due: float,
    timeout: float,
    records: list[Record],
) -> None:
    lag = time.monotonic() - due
    done: asyncio.Future[tuple[int | str, float, bool]] = loop.create_future()
    transport = None
    task = asyncio.current_task()
    assert task is not None
    timer = loop.call_later(max(0.0, due + timeout - time.monotonic()), task.cancel)
    try:
        transport, _ = await loop.create_connection(lambda: _Exchange(request, done), host, port)
        outcome, end, retry_after = await done
        records.append((outcome, end - due, retry_after, lag, due))
    except asyncio.CancelledError:
        records.append(("timeout", time.monotonic() - due, False, lag, due))
    except OSError as exc:
        records.append((_error_kind(exc), time.monotonic() - due, False, lag, due))
    finally:
        timer.cancel()
        if transport is not None and not transport.is_closing():
            transport.abort()


def _request(host: str, port: int, path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: loadgen\r\n\r\n".encode()


async def _drive(
    url: str, dues: Sequence[float], timeout: float, spread: float = 0.0
) -> list[Record]:
    """Start one request at each monotonic time in ``dues`` (sorted) and wait for them all."""
    parts = urlsplit(url)
    host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path or "/"
    request = _request(host, port, path)
    loop = asyncio.get_running_loop()
    records: list[Record] = []
    tasks = []
    for due in dues:
        wait = due - time.monotonic()
        if wait > 0.0005:
            await asyncio.sleep(wait)
        tasks.append(loop.create_task(_one(loop, host, port, request, due, timeout, records)))
    if tasks:
        await asyncio.wait(tasks)
    return records


async def _closed(url: str, concurrency: int, duration: float, timeout: float) -> list[Record]:
    """``concurrency`` clients, each sending its next request when the last one is answered."""
    parts = urlsplit(url)
    host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path or "/"
    request = _request(host, port, path)
    loop = asyncio.get_running_loop()
    records: list[Record] = []
    end = time.monotonic() + duration

    async def client() -> None:
        while time.monotonic() < end:
            await _one(loop, host, port, request, time.monotonic(), timeout, records)

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return records


def closed_loop(
    url: str,
    concurrency: int,
    duration: float,
    *,
    timeout: float = 10.0,
    cpus: Iterable[int] | None = None,
) -> list[Record]:
    """Closed loop (to measure capacity): ``concurrency`` clients back to back, one process."""
    if cpus is not None:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, set(cpus))
    raise_fd_limit()
    loop = new_event_loop()
    try:
        return loop.run_until_complete(_closed(url, concurrency, duration, timeout))
    finally:
        loop.close()


def _worker(
    url: str,
    dues: list[float],
    timeout: float,
    cpus: Iterable[int] | None,
    connection: multiprocessing.connection.Connection | None,
) -> list[Record]:
    if cpus is not None:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, set(cpus))
    raise_fd_limit()
    loop = new_event_loop()
    try:
        records = loop.run_until_complete(_drive(url, dues, timeout))
    finally:
        loop.close()
    if connection is not None:
        connection.send(records)
        connection.close()
    return records


def run(
    url: str,
    dues: Sequence[float],
    *,
    timeout: float = 10.0,
    processes: int = 1,
    cpus: Iterable[int] | None = None,
) -> list[Record]:
    """Start a request at each monotonic time of ``dues`` over ``processes`` processes (request
    ``i`` in process ``i % processes``); return every request's record."""
    cpus = None if cpus is None else list(cpus)
    if processes <= 1:
        return _worker(url, list(dues), timeout, cpus, None)
    context = multiprocessing.get_context("fork")
    children = []
    for index in range(processes):
        receiver, sender = context.Pipe(duplex=False)
        child = context.Process(
            target=_worker, args=(url, list(dues[index::processes]), timeout, cpus, sender)
        )
        child.start()
        sender.close()
        children.append((child, receiver))
    records: list[Record] = []
    for child, receiver in children:
        records.extend(receiver.recv())
        child.join()
    return records


def open_loop(
    url: str,
    rate: float,
    duration: float,
    *,
    start_in: float = 0.2,
    **options: object,
) -> list[Record]:
    """Arrivals at ``rate`` requests per second for ``duration`` seconds, open loop."""
    start = time.monotonic() + start_in
    count = int(rate * duration)
    return run(url, [start + i / rate for i in range(count)], **options)  # type: ignore[arg-type]


def burst(url: str, n: int, *, start_in: float = 0.2, **options: object) -> list[Record]:
    """``n`` connections opened at once; latencies from the burst's start."""
    start = time.monotonic() + start_in
    return run(url, [start] * n, **options)  # type: ignore[arg-type]


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of sorted ``values`` (``q`` in 0..100); NaN when empty."""
    if not values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(values)))
    return values[min(rank, len(values)) - 1]


@dataclass
class Summary:
    """What a run's records add up to. Latencies in seconds."""

    requests: int
    served: int  # 2xx
    shed: int  # the shed status (503 unless told)
    shed_with_retry_after: int
    other: dict[int, int]  # every other status: count
    errors: dict[str, int]  # client errors: count
    served_p50: float
    served_p99: float
    served_max: float
    shed_p99: float
    lag_p99: float  # how late the generator started requests, p99
    lag_max: float
    span: float  # from the first request's start to the last one's end
    served_latencies: list[float] = field(repr=False, default_factory=list)

    @property
    def other_count(self) -> int:
        return sum(self.other.values())

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def summarize(records: Sequence[Record], shed_status: int = 503) -> Summary:
    served = sorted(latency for outcome, latency, *_ in records if _is_2xx(outcome))
    shed = sorted(latency for outcome, latency, *_ in records if outcome == shed_status)
    other: dict[int, int] = {}
    errors: dict[str, int] = {}
    for outcome, *_ in records:
        if isinstance(outcome, str):
            errors[outcome] = errors.get(outcome, 0) + 1
        elif not _is_2xx(outcome) and outcome != shed_status:
            other[outcome] = other.get(outcome, 0) + 1
    lags = sorted(record[3] for record in records)
    return Summary(
        requests=len(records),
        served=len(served),
        shed=len(shed),
        shed_with_retry_after=sum(
            1 for outcome, _, retry, *_ in records if outcome == shed_status and retry
        ),
        other=other,
        errors=errors,
        served_p50=percentile(served, 50),
        served_p99=percentile(served, 99),
        served_max=served[-1] if served else math.nan,
        shed_p99=percentile(shed, 99),
        lag_p99=percentile(lags, 99),
        lag_max=lags[-1] if lags else math.nan,
        span=(
            max(due + latency for _, latency, _, _, due in records)
            - min(due for *_, due in records)
            if records
            else 0.0
        ),
        served_latencies=served,
    )


def _is_2xx(outcome: int | str) -> bool:
    return isinstance(outcome, int) and 200 <= outcome < 300


def ms(seconds: float) -> str:
    return (
        "-"
        if math.isnan(seconds)
        else f"{seconds * 1000:,.0f}"
        if seconds >= 0.1
        else (f"{seconds * 1000:.1f}")
    )


# ---- self-test: the generator against a server that answers at once ----------------------

_TRIVIAL_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


class _TrivialServer(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if b"\r\n\r\n" in data:
            self.transport.write(_TRIVIAL_RESPONSE)  # type: ignore[attr-defined]


def _serve_trivial(port: int, cpu: int | None) -> None:
    if cpu is not None:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {cpu})
    raise_fd_limit()
    loop = new_event_loop()
    server = loop.run_until_complete(
        loop.create_server(_TrivialServer, "127.0.0.1", port, backlog=4096)
    )
    with contextlib.suppress(KeyboardInterrupt):
        loop.run_until_complete(server.serve_forever())


def two_cpus() -> tuple[int | None, list[int] | None]:
    """CPU for the server and CPUs for the clients: 0 and [1] with two cores or more."""
    if (os.cpu_count() or 1) >= 2 and hasattr(os, "sched_setaffinity"):
        return 0, [1]
    return None, None


def self_test(
    rates: Sequence[float], duration: float, bursts: Sequence[int], processes: int
) -> None:
    server_cpu, client_cpus = two_cpus()
    port = free_port()
    server = multiprocessing.get_context("fork").Process(
        target=_serve_trivial, args=(port, server_cpu), daemon=True
    )
    server.start()
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for_port(port, what="the self-test's server")
        print(
            f"loadgen self-test: a trivial uvloop server on CPU {server_cpu}, the generator on "
            f"CPUs {client_cpus} ({processes} process(es)), a new connection per request"
        )
        print(
            "| load | requests | 2xx | errors | achieved req/s | p50 ms | p99 ms | max ms "
            "| launch lag p99 ms | max ms |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for rate in rates:
            records = open_loop(url, rate, duration, processes=processes, cpus=client_cpus)
            _print_self_test_row(f"{rate:,.0f} req/s for {duration:g} s", records)
        for n in bursts:
            records = burst(url, n, processes=processes, cpus=client_cpus)
            _print_self_test_row(f"burst of {n:,}", records)
    finally:
        server.terminate()
        server.join()


def _print_self_test_row(label: str, records: list[Record]) -> None:
    summary = summarize(records)
    print(
        f"| {label} | {summary.requests:,} | {summary.served:,} | {summary.error_count:,} "
        f"| {summary.requests / summary.span:,.0f} | {ms(summary.served_p50)} "
        f"| {ms(summary.served_p99)} | {ms(summary.served_max)} | {ms(summary.lag_p99)} "
        f"| {ms(summary.lag_max)} |",
        flush=True,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", nargs="?")
    parser.add_argument("--rate", type=float, help="open loop: requests per second")
    parser.add_argument("--duration", type=float, default=3.0, help="open loop: seconds")
    parser.add_argument("--burst", type=int, help="N connections at once")
    parser.add_argument("--timeout", type=float, default=10.0, help="per request, seconds")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--shed-status", type=int, default=503)
    parser.add_argument("--self-test", action="store_true")
    args = parser.parse_args(argv)
    if args.self_test:
        self_test([1_000, 2_000, 4_000, 8_000], 3.0, [1_500, 5_000], args.processes)
        return
    if not args.url or (args.rate is None) == (args.burst is None):
        parser.error("give a URL and one of --rate or --burst (or --self-test)")
    options = {"timeout": args.timeout, "processes": args.processes}
    if args.rate is not None:
        records = open_loop(args.url, args.rate, args.duration, **options)
    else:
        records = burst(args.url, args.burst, **options)
    summary = summarize(records, args.shed_status)
    print(
        f"requests {summary.requests:,}: served {summary.served:,} (p50 {ms(summary.served_p50)}"
        f" ms, p99 {ms(summary.served_p99)} ms, max {ms(summary.served_max)} ms), shed "
        f"{summary.shed:,} (p99 {ms(summary.shed_p99)} ms, {summary.shed_with_retry_after:,} "
        f"with Retry-After), other {summary.other or 0}, client errors {summary.errors or 0}; "
        f"launch lag p99 {ms(summary.lag_p99)} ms"
    )


if __name__ == "__main__":
    sys.exit(main())
