"""Real server processes on loopback for end-to-end tests: a free port, start, wait, stop by pid."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

#: How long a server may take to accept connections before the test fails.
START_TIMEOUT_SECONDS = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop ``process`` and its children by pid: SIGTERM to its group, SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@contextmanager
def serve(
    args: Sequence[str],
    port: int,
    *,
    cwd: str | Path | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``python -m <args>`` (a server listening on ``port``) until the block ends.

    Fails with the server's own output if it exits or does not accept connections in time.
    """
    # A file, not a pipe: a server logging into a pipe nobody reads would block when it fills.
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [sys.executable, "-m", *args],
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so workers are stopped with it
        )
        try:
            deadline = time.monotonic() + START_TIMEOUT_SECONDS
            while not _accepts(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    stop(process)
                    log.seek(0)
                    output = log.read().decode(errors="replace")
                    raise RuntimeError(f"server {' '.join(args)} did not start:\n{output}")
                time.sleep(0.05)
            yield process
        finally:
            stop(process)
