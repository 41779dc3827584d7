"""Servers the benches start on loopback: a free port, waiting for a server to listen, and a
throwaway redis-server (no persistence, killed with its process group on exit)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager


def free_port() -> int:
    """A loopback TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10, what: str = "the server") -> None:
    """Returns once something accepts connections on loopback `port`; RuntimeError after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start listening on port {port}") from None
            time.sleep(0.02)


@contextmanager
def redis_server(cpus: Sequence[int] | None = None) -> Iterator[tuple[int, int]]:
    """A redis-server on a free loopback port (pinned to `cpus` with taskset when given):
    (port, pid). Exits the bench with a message when redis-server is not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (apt-get install -y redis-server)")
    pin = ["taskset", "-c", ",".join(map(str, cpus))] if cpus else []
    port = free_port()
    with tempfile.TemporaryDirectory() as scratch:
        process = subprocess.Popen(
            [
                *pin,
                binary,
                *("--port", str(port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", scratch),
            ],
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_for_port(port, what="redis-server")
            yield port, process.pid
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=10)
