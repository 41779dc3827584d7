"""Shared fixtures. The tests import the *installed* package (see pyproject's pytest options)."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest
from redis_support import RedisCluster, RedisServer, RespClient

import rust_py_rate_limit
from rust_py_rate_limit import ManualClock

CHECKOUT = pathlib.Path(__file__).resolve().parent.parent


def pytest_report_header() -> str:
    return f"rust_py_rate_limit {rust_py_rate_limit.__version__} from {rust_py_rate_limit.__file__}"


@pytest.fixture
def clock() -> ManualClock:
    """A clock that only moves when the test advances it."""
    return ManualClock()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real ``redis-server`` on a free loopback port for the whole session (fails, never
    skips, when redis-server is not installed)."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    """A ``redis-server`` of the test's own, to kill, restart or freeze; stopped after it."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def redis(redis_server: RedisServer) -> Iterator[RespClient]:
    """A client of the session's server, emptied before the test."""
    if redis_server.process is None:  # a fault test killed it
        redis_server.start()
    with redis_server.client() as client:
        client.call("FLUSHALL")
        yield client


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """A Redis Cluster of 3 masters on free loopback ports, for the whole session."""
    cluster = RedisCluster(3).start()
    try:
        yield cluster
    finally:
        cluster.close()
