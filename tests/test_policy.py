"""RequestPolicy: the one place where a web request becomes a decision, for every framework."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from redis_support import RedisServer

from rust_py_rate_limit import Decision, ManualClock, RateLimiter
from rust_py_rate_limit.policy import MAX_DYNAMIC_RATES, Refusal, RequestPolicy

#: The `timeout` of Redis limiters whose tests are not about timeouts (a loaded host may take
#: longer than the default 50 ms for a round trip).
SAFE = 5.0


class Req:
    """A request as the key functions see a Werkzeug one: an environ and headers."""

    def __init__(self, peer: str = "203.0.113.7", **headers: str) -> None:
        self.environ = {"REMOTE_ADDR": peer}
        self.headers = {k.replace("_", "-").lower(): v for k, v in headers.items()}


def test_settings_build_a_limiter(clock: ManualClock) -> None:
    policy = RequestPolicy(limit=2, window_seconds=10, algorithm="sliding", clock=clock)
    assert policy.limiter.algorithm == "sliding"
    assert [policy.decide(Req())[0].allowed for _ in range(3)] == [True, True, False]
    clock.advance(20)
    assert policy.decide(Req())[0].allowed


def test_a_rate_string_builds_a_limiter() -> None:
    policy = RequestPolicy(rate="3/minute; 1/second", algorithm="gcra")
    assert sorted(policy.limiter.rates) == [(1, 1), (3, 60)]


def test_an_existing_limiter_is_used_as_it_is(clock: ManualClock) -> None:
    limiter = RateLimiter(1, 60, clock=clock)
    policy = RequestPolicy(limiter)
    assert policy.limiter is limiter
    policy.decide(Req())
    assert limiter.remaining("203.0.113.7") == 0


def test_keys_are_per_client_and_scoped() -> None:
    policy = RequestPolicy(rate="1/minute", scope="views.login")
    assert policy.decide(Req("1.1.1.1"))[0].allowed
    assert policy.decide(Req("2.2.2.2"))[0].allowed
    assert not policy.decide(Req("1.1.1.1"))[0].allowed
    assert policy.limiter.remaining("views.login:2.2.2.2") == 0
    assert policy.limiter.remaining("2.2.2.2") == 1


def test_headers_come_with_the_decision() -> None:
    policy = RequestPolicy(rate="1/minute", headers="both", name="api")
    _, headers = policy.decide(Req())
    assert dict(headers)["RateLimit"] == '"api";r=0;t=60'
    decision, headers = policy.decide(Req())
    assert not decision.allowed and dict(headers)["Retry-After"] == "60"


def test_exempt_paths_exact_and_by_prefix_and_methods() -> None:
    policy = RequestPolicy(
        rate="1/minute", exempt_paths=["/health", "/static/*"], exempt_methods=["options"]
    )
    assert policy.exempt("GET", "/health")
    assert not policy.exempt("GET", "/health/deep")
    assert policy.exempt("GET", "/static/app.js")
    assert not policy.exempt("GET", "/staticfile")
    assert policy.exempt("OPTIONS", "/api")
    assert not policy.exempt("GET", "/api")


def test_cost_fixed_and_per_request() -> None:
    fixed = RequestPolicy(limit=10, window_seconds=60, cost=4)
    assert fixed.decide(Req())[0].remaining == 6
    by_header = RequestPolicy(limit=10, window_seconds=60, cost=lambda r: int(r.headers["n"]))
    assert by_header.decide(Req(n="7"))[0].remaining == 3


@pytest.mark.parametrize(
    ("result", "error", "message"),
    [(0, ValueError, ">= 1, not 0"), ("2", TypeError, "str"), (True, TypeError, "bool")],
)
def test_a_bad_cost_from_the_cost_function_is_named(
    result: object, error: type[Exception], message: str
) -> None:
    policy = RequestPolicy(limit=10, window_seconds=60, cost=lambda r: result)
    with pytest.raises(error, match=f"cost function's result.*{message}"):
        policy.decide(Req())


def test_a_dynamic_limit_gives_each_tier_its_own_limiter(clock: ManualClock) -> None:
    tiers = {"free": "1/minute", "pro": "3/minute"}
    policy = RequestPolicy(
        rate="2/minute",
        clock=clock,
        dynamic_limit=lambda r: tiers.get(r.headers.get("x-tier", "")),
    )
    free = [policy.decide(Req("1.1.1.1", x_tier="free"))[0].allowed for _ in range(2)]
    pro = [policy.decide(Req("2.2.2.2", x_tier="pro"))[0].allowed for _ in range(4)]
    default = [policy.decide(Req("3.3.3.3"))[0].allowed for _ in range(3)]
    assert (free, pro, default) == ([True, False], [True] * 3 + [False], [True, True, False])
    decision, headers = policy.decide(Req("2.2.2.2", x_tier="pro"))
    assert decision.limit == 3 and dict(headers)["X-RateLimit-Limit"] == "3"
    clock.advance(60)  # the tiers' limiters share the policy's clock
    assert policy.decide(Req("1.1.1.1", x_tier="free"))[0].allowed


def test_a_dynamic_limit_returning_rubbish_is_named() -> None:
    policy = RequestPolicy(rate="2/minute", dynamic_limit=lambda r: r.headers["rate"])
    with pytest.raises(ValueError, match="'lots'"):
        policy.decide(Req(rate="lots"))
    with pytest.raises(TypeError, match="int"):
        RequestPolicy(rate="2/minute", dynamic_limit=lambda r: 5).decide(Req())


def test_dynamic_limits_are_bounded() -> None:
    policy = RequestPolicy(rate="2/minute", dynamic_limit=lambda r: r.headers["rate"])
    for n in range(1, MAX_DYNAMIC_RATES + 1):
        policy.decide(Req(rate=f"{n}/hour"))
    with pytest.raises(ValueError, match=f"more than {MAX_DYNAMIC_RATES} distinct rates"):
        policy.decide(Req(rate="99999/hour"))
    assert policy.decide(Req(rate="5/hour"))[0].allowed  # the known tiers still work


def test_adecide_gives_what_decide_gives(clock: ManualClock) -> None:
    policy = RequestPolicy(rate="1/minute", clock=clock)
    first = asyncio.run(policy.adecide(Req()))
    second = asyncio.run(policy.adecide(Req()))
    assert first[0].allowed and not second[0].allowed
    assert dict(second[1])["Retry-After"] == "60"


def test_refusal_bodies() -> None:
    default = Refusal()
    assert (default.status_code, json.loads(default.body)) == (429, {"detail": "Too many requests"})
    assert default.content_type == "application/json"
    text = Refusal(503, "slow down")
    assert (text.status_code, text.body, text.content_type) == (
        503,
        b"slow down",
        "text/plain; charset=utf-8",
    )
    raw = Refusal(429, b"<x/>", "application/xml")
    assert (raw.body, raw.content_type) == (b"<x/>", "application/xml")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({}, TypeError, "needs `limiter`, `rate`"),
        ({"limit": 5}, TypeError, "needs `limiter`"),
        ({"rate": "1/minute", "limit": 5}, TypeError, "not both"),
        ({"limiter": RateLimiter(1, 1), "rate": "1/minute"}, TypeError, "not both"),
        ({"limiter": "redis://x"}, TypeError, "RateLimiter, not str"),
        ({"rate": 5}, TypeError, "`rate` must be a str"),
        ({"rate": "ten per fortnight"}, ValueError, "ten per fortnight"),
        ({"limit": 0, "window_seconds": 1}, ValueError, "limit"),
        ({"rate": "1/second", "algorithm": "magic"}, ValueError, "magic"),
        ({"rate": "1/second", "key_func": "cookie"}, ValueError, "'cookie'"),
        ({"rate": "1/second", "trusted_proxies": ["nope"]}, ValueError, "'nope'"),
        ({"rate": "1/second", "cost": 0}, ValueError, "`cost` must be >= 1, not 0"),
        ({"rate": "1/second", "cost": 1.5}, TypeError, "`cost` must be an int, not float"),
        ({"rate": "1/second", "exempt_paths": [1]}, TypeError, "exempt_paths"),
        ({"rate": "1/second", "dynamic_limit": "10/s"}, TypeError, "dynamic_limit"),
        ({"rate": "1/second", "headers": "X-RateLimit"}, ValueError, "'X-RateLimit'"),
        ({"rate": "1/second", "status_code": 200}, ValueError, "200"),
        ({"rate": "1/second", "status_code": "429"}, TypeError, "status_code"),
        ({"rate": "1/second", "body": 5}, TypeError, "`body`"),
        ({"rate": "1/second", "scope": 5}, TypeError, "`scope`"),
    ],
)
def test_bad_settings_are_named(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        RequestPolicy(**kwargs)


def test_a_policy_takes_a_raw_asgi_scope_only_when_nothing_needs_the_request() -> None:
    assert RequestPolicy(rate="1/minute").accepts_asgi_scope
    assert RequestPolicy(rate="1/minute", key_func="header:X-Api-Key").accepts_asgi_scope
    assert not RequestPolicy(rate="1/minute", key_func="user").accepts_asgi_scope
    assert not RequestPolicy(rate="1/minute", cost=lambda r: 2).accepts_asgi_scope
    assert not RequestPolicy(rate="1/minute", dynamic_limit=lambda r: None).accepts_asgi_scope
    scope = {"type": "http", "client": ("203.0.113.7", 1), "headers": []}
    policy = RequestPolicy(rate="1/minute")
    assert policy.decide_raw(scope)[0].allowed
    assert not policy.decide(Req("203.0.113.7"))[0].allowed  # the same client, the same key


#: Ticks of the event loop (10 ms apart) before the frozen server is resumed.
THAW_AFTER_TICKS = 10


def decided_while_frozen(
    server: RedisServer, decide: Callable[[], Awaitable[tuple[Decision, Any]]]
) -> tuple[Decision, int]:
    """Awaits ``decide()`` while ``server`` is frozen (SIGSTOP). A ticker task on the same event
    loop resumes the server after ``THAW_AFTER_TICKS`` ticks: the decision can only come from
    the server if the loop kept running while it waited. Returns it and the ticks counted."""
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1
            if ticks == THAW_AFTER_TICKS:
                server.thaw()

    async def run() -> Decision:
        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)  # the ticker is running before the decision starts
        try:
            decision, _ = await decide()
        finally:
            task.cancel()
        return decision

    with server.frozen():
        decision = asyncio.run(run())
    return decision, ticks


def test_on_redis_async_code_awaits_the_round_trip_and_tiers_keep_apart(
    own_server: RedisServer,
) -> None:
    clock = ManualClock()
    limiter = RateLimiter.from_rate(
        "2/minute", clock=clock, storage=own_server.url, key_prefix="app", timeout=SAFE
    )
    tiers = {"pro": "3/minute"}
    policy = RequestPolicy(limiter, dynamic_limit=lambda r: tiers.get(r.headers.get("x-tier", "")))
    assert limiter.remaining("warm-up") == 2  # connected, scripts loaded

    # While the server is frozen, the event loop runs on: a blocking `adecide` would stop the
    # ticker that resumes the server, and would fail with a StorageError after the timeout.
    for call in (
        lambda: policy.adecide(Req("1.1.1.1")),
        lambda: policy.adecide_raw(Req("1.1.1.1")),
        lambda: policy.adecide(Req("1.1.1.1", x_tier="pro")),
    ):
        decision, ticks = decided_while_frozen(own_server, call)
        assert decision.allowed and ticks >= THAW_AFTER_TICKS
    assert limiter.stats()["storage_errors"] == 0

    async def run() -> tuple[list[bool], list[bool]]:
        default = [(await policy.adecide(Req("1.1.1.1")))[0].allowed for _ in range(1)]
        pro = [
            (await policy.adecide_raw(Req("1.1.1.1", x_tier="pro")))[0].allowed for _ in range(3)
        ]
        return default, pro

    # The same client under two tiers: two counts, both on the server (each with one or two
    # requests admitted above).
    assert asyncio.run(run()) == ([False], [True, True, False])
    with own_server.client() as redis:
        keys = sorted(redis.call("KEYS", "*"))
    assert keys == ["app:{1.1.1.1}:fixed:2:60s", "app:{1.1.1.1}:fixed:3:60s"]
    assert policy.decide(Req("1.1.1.1"))[0].allowed is False  # sync code agrees


def test_the_round_trip_check_catches_an_adecide_that_blocks(own_server: RedisServer) -> None:
    """The check above fails for an `adecide` that blocks the event loop (as the sync
    `decide` does): the ticker never runs, so the server stays frozen and the decision times
    out into the failure policy."""
    limiter = RateLimiter(2, 60, storage=own_server.url, timeout=0.5, on_storage_error="deny")
    policy = RequestPolicy(limiter)
    assert limiter.remaining("warm-up") == 2

    async def blocking_adecide(request: Req) -> tuple[Decision, list[tuple[str, str]]]:
        return policy.decide(request)

    decision, ticks = decided_while_frozen(own_server, lambda: blocking_adecide(Req()))
    assert not decision.allowed and limiter.stats()["storage_errors"] == 1
    assert ticks < THAW_AFTER_TICKS


def test_a_given_limiter_s_tiers_share_its_clock_and_settings() -> None:
    clock = ManualClock()
    limiter = RateLimiter(1, 60, "sliding", max_keys=10, clock=clock)
    policy = RequestPolicy(limiter, dynamic_limit=lambda r: "2/minute")
    assert [policy.decide(Req())[0].allowed for _ in range(3)] == [True, True, False]
    tier, _ = policy._for_rate("2/minute")
    assert (tier.algorithm, tier.max_keys) == ("sliding", 10)
    clock.advance(120)  # the limiter's manual clock moves the tier too
    assert policy.decide(Req())[0].allowed


def test_a_given_limiter_with_settings_to_build_one_is_refused() -> None:
    with pytest.raises(TypeError, match=r"not both \(clock\)"):
        RequestPolicy(RateLimiter(1, 1), clock=ManualClock())


def test_view_scope_names_a_view_by_module_and_qualified_name() -> None:
    from rust_py_rate_limit.policy import view_scope

    class Views:
        def show(self) -> None: ...

    class Endpoint:
        def __call__(self) -> None: ...

    assert view_scope(test_view_scope_names_a_view_by_module_and_qualified_name).endswith(
        "test_policy.test_view_scope_names_a_view_by_module_and_qualified_name"
    )
    assert view_scope(Views.show).endswith(
        "test_view_scope_names_a_view_by_module_and_qualified_name.<locals>.Views.show"
    )
    assert view_scope(Endpoint()).endswith("<locals>.Endpoint")
