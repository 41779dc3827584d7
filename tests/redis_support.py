"""Real Redis servers for the tests: Debian's ``redis-server`` on free loopback ports, started
and stopped by pid, and a tiny RESP client so the tests need no Python Redis library.

``.ci/run`` installs ``redis-server``; a test that needs it fails (never skips) without it.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from servers import free_port, stop

T = TypeVar("T")

#: How long a server may take to answer PING, or a cluster to agree on its slots.
START_TIMEOUT_SECONDS = 20.0

INSTALL_HINT = (
    "redis-server is not installed: `apt-get update && apt-get install -y redis-server` "
    "(.ci/run does this)"
)


class RedisError(Exception):
    """An error reply from the server (``-ERR ...``)."""


class RespClient:
    """A blocking RESP2 client over one socket: ``call("SET", "k", 1)``.

    Replies come back as Python values: simple strings and bulk strings as ``str`` (``None``
    for nil), integers as ``int``, arrays as lists; an error reply raises :class:`RedisError`.
    """

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.reader = self.sock.makefile("rb")

    def close(self) -> None:
        self.reader.close()
        self.sock.close()

    def __enter__(self) -> RespClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, *args: object) -> Any:
        parts = [str(a).encode() if not isinstance(a, bytes) else a for a in args]
        payload = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
        self.sock.sendall(payload)
        return self._reply()

    def _line(self) -> bytes:
        line = self.reader.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("the server closed the connection")
        return line[:-2]

    def _reply(self) -> Any:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            data = self.reader.read(size + 2)[:-2]
            return data.decode(errors="surrogateescape")
        if kind == b"*":
            count = int(rest)
            return None if count < 0 else [self._reply() for _ in range(count)]
        raise ConnectionError(f"not a RESP reply: {line!r}")


def server_us(client: RespClient) -> int:
    """The server's clock (TIME), in microseconds."""
    seconds, micros = client.call("TIME")
    return int(seconds) * 1_000_000 + int(micros)


def on_server_clock(client: RespClient, call: Callable[[], T]) -> tuple[T, tuple[int, int]]:
    """``call()``'s result, and the server's clock just before and just after it (µs)."""
    before = server_us(client)
    result = call()
    return result, (before, server_us(client))


def ttl_given(client: RespClient, key: str, when: tuple[int, int]) -> tuple[int, int]:
    """The range of TTLs (ms) ``key`` can have been given by a command run between the server
    times ``when`` (µs, from :func:`on_server_clock`): its absolute expiry (PEXPIRETIME) less
    the command's time. Unlike PTTL, it does not shrink while the test runs."""
    expires_ms = int(client.call("PEXPIRETIME", key))
    assert expires_ms > 0, f"{key} has no expiry ({expires_ms})"
    before_us, after_us = when
    return expires_ms - after_us // 1000, expires_ms - before_us // 1000


def _answers_ping(port: int) -> bool:
    try:
        with RespClient(port, timeout=0.5) as client:
            return bool(client.call("PING") == "PONG")
    except (OSError, RedisError):
        return False


def _answers_tls(port: int, ca_file: Path) -> bool:
    """Whether a TLS handshake trusting ``ca_file`` succeeds and PING gets PONG."""
    context = ssl.create_default_context(cafile=str(ca_file))
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=0.5) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            tls.sendall(b"*1\r\n$4\r\nPING\r\n")
            return tls.recv(7) == b"+PONG\r\n"
    except (OSError, ssl.SSLError):
        return False


def make_tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway certificate authority and a server certificate for 127.0.0.1, made with
    the openssl command: (ca.crt, server.crt, server.key)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("the openssl command is needed to make test certificates")
    ca_key, ca, key, csr, cert = (
        directory / name for name in ("ca.key", "ca.crt", "server.key", "server.csr", "server.crt")
    )
    ext = directory / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    days = ["-days", "2"]
    ca_subject = ["-subj", "/CN=rust-py-rate-limit test CA"]
    for args in (
        [
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            ca_key,
            "-out",
            ca,
            *days,
            *ca_subject,
        ],
        [
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            key,
            "-out",
            csr,
            "-subj",
            "/CN=127.0.0.1",
        ],
        [
            "x509",
            "-req",
            "-in",
            csr,
            "-CA",
            ca,
            "-CAkey",
            ca_key,
            "-CAcreateserial",
            "-out",
            cert,
            *days,
            "-extfile",
            ext,
        ],
    ):
        subprocess.run([openssl, *map(str, args)], check=True, capture_output=True, timeout=60)
    return ca, cert, key


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1: no persistence, its own scratch directory.

    ``kill()`` stops it by pid (a crash, for fault tests) and ``start()`` brings it back on
    the same port, empty. ``frozen()`` stops it with SIGSTOP for a block (a server that
    accepts connections and requests but never answers) and always resumes it.
    """

    def __init__(self, *extra_args: str, port: int | None = None, tls: bool = False) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(INSTALL_HINT)
        self.binary = binary
        self.port = port or free_port()
        self.extra_args = extra_args
        self.dir = Path(tempfile.mkdtemp(prefix=f"redis-{self.port}-"))
        self.process: subprocess.Popen[bytes] | None = None
        #: With ``tls``, the server speaks only TLS on its port; ``ca_file`` is the authority
        #: that signed its certificate.
        self.tls = tls
        self.ca_file: Path | None = None
        if tls:
            self.ca_file, cert, key = make_tls_files(self.dir)
            self.extra_args = (
                "--tls-cert-file",
                str(cert),
                "--tls-key-file",
                str(key),
                "--tls-ca-cert-file",
                str(self.ca_file),
                "--tls-auth-clients",
                "no",
                *extra_args,
            )

    @property
    def url(self) -> str:
        if self.tls:
            return f"rediss://127.0.0.1:{self.port}/0?ssl_ca_certs={self.ca_file}"
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        ports = (
            ["--port", "0", "--tls-port", str(self.port)]
            if self.tls
            else ["--port", str(self.port)]
        )
        args = [self.binary, *ports, "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--dir", str(self.dir)]
        args += ["--daemonize", "no", "--logfile", str(self.dir / "redis.log")]
        self.process = subprocess.Popen(
            [*args, *self.extra_args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        ready = (
            (lambda: _answers_tls(self.port, self.ca_file))
            if self.ca_file is not None
            else (lambda: _answers_ping(self.port))
        )
        while not ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                log = self.dir / "redis.log"
                raise RuntimeError(
                    f"redis-server on port {self.port} did not start:\n"
                    + (log.read_text() if log.exists() else "")
                )
            time.sleep(0.02)
        return self

    def kill(self) -> None:
        if self.process is not None:
            self.thaw()  # a stopped process would hold its SIGTERM until resumed
            stop(self.process)
            self.process = None

    def freeze(self) -> None:
        """Stops the server with SIGSTOP: its socket still queues requests, it answers none."""
        assert self.process is not None and self.process.poll() is None, "not running"
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """Resumes a frozen server (SIGCONT); harmless when it is not frozen."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """The server frozen for the block, resumed when it ends, whatever happened in it
        (the block may resume it earlier with ``thaw()``)."""
        self.freeze()
        try:
            yield
        finally:
            self.thaw()

    def client(self) -> RespClient:
        return RespClient(self.port)

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_port() -> int:
    """A free port whose cluster bus port (10,000 above it) is free too; Redis wants it at
    most 55,535."""
    for _ in range(1000):
        port = random.randint(20_000, 45_000)
        if _port_free(port) and _port_free(port + 10_000):
            return port
    raise RuntimeError("no free port pair for a Redis cluster node")


class RedisCluster:
    """A Redis Cluster of ``masters`` masters (no replicas) on 127.0.0.1, made with
    ``redis-cli --cluster create``."""

    def __init__(self, masters: int = 3) -> None:
        self.nodes = [
            RedisServer(
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                port=cluster_port(),
            )
            for _ in range(masters)
        ]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def start(self) -> RedisCluster:
        for node in self.nodes:
            node.start()
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError(INSTALL_HINT)
        addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
        created = subprocess.run(
            [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if created.returncode != 0:
            self.close()
            raise RuntimeError(f"redis-cli --cluster create failed:\n{created.stdout}")
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not all(self._ready(node) for node in self.nodes):
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError("the Redis cluster did not reach cluster_state:ok")
            time.sleep(0.05)
        return self

    @staticmethod
    def _ready(node: RedisServer) -> bool:
        with node.client() as client:
            info = client.call("CLUSTER", "INFO")
        return "cluster_state:ok" in info and "cluster_slots_assigned:16384" in info

    def node_for(self, key: str) -> RedisServer:
        """The master serving ``key``'s slot."""
        with self.nodes[0].client() as client:
            slot = client.call("CLUSTER", "KEYSLOT", key)
            for start, end, master, *_ in client.call("CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    port = int(master[1])
                    return next(n for n in self.nodes if n.port == port)
        raise LookupError(f"no node serves slot {slot}")

    def close(self) -> None:
        for node in self.nodes:
            node.close()
