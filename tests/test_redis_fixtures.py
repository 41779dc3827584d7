"""The Redis servers the backend tests run against are real, and the fixtures control them."""

from __future__ import annotations

import pytest
from redis_support import RedisCluster, RedisError, RedisServer, RespClient


def test_the_session_server_is_a_real_redis(redis: RespClient) -> None:
    assert redis.call("PING") == "PONG"
    assert redis.call("SET", "k", "v", "PX", 60000) == "OK"
    assert redis.call("GET", "k") == "v"
    assert 0 < redis.call("PTTL", "k") <= 60000
    assert redis.call("EVAL", "return redis.call('TIME')", 0)[0].isdigit()
    with pytest.raises(RedisError, match="unknown command"):
        redis.call("NO-SUCH-COMMAND")


def test_each_test_starts_from_an_empty_server(redis: RespClient) -> None:
    assert redis.call("DBSIZE") == 0


def test_a_server_killed_by_pid_comes_back_empty_on_its_port() -> None:
    server = RedisServer().start()
    try:
        with server.client() as client:
            client.call("SET", "k", "v")
        server.kill()
        with pytest.raises(OSError):
            RespClient(server.port, timeout=0.5).call("PING")
        server.start()
        with server.client() as client:
            assert client.call("GET", "k") is None
    finally:
        server.close()


def test_the_cluster_has_three_masters_and_hash_tags_share_a_node(
    redis_cluster: RedisCluster,
) -> None:
    assert len(redis_cluster.nodes) == 3
    with redis_cluster.nodes[0].client() as client:
        masters = [n for n in client.call("CLUSTER", "NODES").splitlines() if "master" in n]
        assert len(masters) == 3
        assert client.call("CLUSTER", "KEYSLOT", "{user:1}:0") == client.call(
            "CLUSTER", "KEYSLOT", "{user:1}:1"
        )
    owners = {redis_cluster.node_for(f"key:{n}").port for n in range(50)}
    assert len(owners) == 3  # the slots really are spread over the masters
    node = redis_cluster.node_for("{user:1}:0")
    with node.client() as client:
        assert client.call("SET", "{user:1}:0", "x") == "OK"
    assert redis_cluster.url.startswith("redis+cluster://127.0.0.1:")
