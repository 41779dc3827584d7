"""``rust_py_rate_limit.metrics.PrometheusCollector``: the exposition prometheus-client writes,
parsed back, after known sequences of decisions; names on every limiter; the bad inputs."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import subprocess
import sys

import pytest
from concurrency_outcomes import OUTCOMES, run_every_outcome
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_generate
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_parse,
)
from prometheus_client.parser import text_string_to_metric_families
from redis_support import RedisServer
from test_adaptive_limit import run_service

from rust_py_rate_limit import (
    ConcurrencyLimiter,
    FixedWindow,
    Gcra,
    Lease,
    ManualClock,
    Overloaded,
    RateLimiter,
    SlidingWindow,
    TokenBucket,
)
from rust_py_rate_limit.metrics import PrometheusCollector

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(collector: PrometheusCollector) -> Series:
    """The samples of ``collector`` as a scrape sees them: registered, written in the text
    format, parsed back."""
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    series: Series = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            series[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return series


def only(series: Series, metric: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: value for (name, labels), value in series.items() if name == metric}


def labels(**given: str) -> frozenset[tuple[str, str]]:
    return frozenset(given.items())


def test_a_rate_limiter_exports_its_decisions_keys_and_top_offenders(clock: ManualClock) -> None:
    api = RateLimiter(2, 60, name="api", clock=clock)
    for key, tries in (("ip:a", 3), ("ip:b", 5), ("ip:c", 1)):
        for _ in range(tries):
            api.allow(key)
    series = scrape(PrometheusCollector(api))
    assert only(series, "rust_py_rate_limit_requests_total") == {
        labels(limiter="api", result="allowed"): 5,
        labels(limiter="api", result="blocked"): 4,
    }
    assert only(series, "rust_py_rate_limit_active_keys") == {labels(limiter="api"): 3}
    assert only(series, "rust_py_rate_limit_top_blocked") == {
        labels(limiter="api", key="ip:b"): 3,
        labels(limiter="api", key="ip:a"): 1,
    }
    for counter in ("rejected_full", "evicted", "storage_errors"):
        assert only(series, f"rust_py_rate_limit_{counter}_total") == {labels(limiter="api"): 0}
    clock.advance(60)
    assert api.allow("ip:b")
    again = scrape(PrometheusCollector(api))
    assert (
        again[("rust_py_rate_limit_requests_total", labels(limiter="api", result="allowed"))] == 6
    )
    assert api.top_blocked() == [("ip:b", 3), ("ip:a", 1)], "a scrape does not reset the tracker"


def test_a_full_store_counts_its_refused_and_evicted_keys(clock: ManualClock) -> None:
    full = RateLimiter(5, 60, max_keys=1, name="full", clock=clock)
    evicting = RateLimiter(5, 60, max_keys=1, on_full="evict", name="evicting", clock=clock)
    for limiter in (full, evicting):
        for key in ("k1", "k2", "k3"):
            limiter.allow(key)
    series = scrape(PrometheusCollector(full, evicting))
    assert only(series, "rust_py_rate_limit_rejected_full_total") == {
        labels(limiter="full"): 2,
        labels(limiter="evicting"): 0,
    }
    assert only(series, "rust_py_rate_limit_evicted_total") == {
        labels(limiter="full"): 0,
        labels(limiter="evicting"): 2,
    }
    assert only(series, "rust_py_rate_limit_active_keys") == {
        labels(limiter="full"): 1,
        labels(limiter="evicting"): 1,
    }


def test_a_concurrency_limiter_exports_acquisitions_by_result_and_its_gauges(
    clock: ManualClock,
) -> None:
    def check(db: ConcurrencyLimiter) -> None:
        series = scrape(PrometheusCollector(db))
        assert only(series, "rust_py_rate_limit_concurrency_requests_total") == {
            labels(limiter="db", result=result, reason=reason): count
            for (result, reason), count in OUTCOMES.items()
        }
        gauges = {
            "concurrency_deadline_missed_total": 1,
            "concurrency_enqueued_total": 5,
            "concurrency_in_flight": 2,
            "concurrency_queued": 2,
            "concurrency_limit": 2,
            "concurrency_max_in_flight_seen": 2,
            "active_keys": 0,
        }
        for metric, value in gauges.items():
            assert only(series, f"rust_py_rate_limit_{metric}") == {labels(limiter="db"): value}

    run_every_outcome(clock, check)


def test_a_concurrency_limiter_exports_its_queue_and_lease_histograms(clock: ManualClock) -> None:
    db = ConcurrencyLimiter(1, queue=2, queue_timeout=5, clock=clock, name="db")
    idle = ConcurrencyLimiter(1, name="idle")

    async def take() -> Lease:
        return await db.acquire()

    async def run() -> None:
        held = db.try_acquire()
        assert held is not None
        waiting = asyncio.create_task(take())
        await asyncio.sleep(0)
        clock.advance(0.03)
        held.release()  # held 30 ms; the waiter waited 30 ms
        lease = await waiting
        clock.advance(45)
        lease.release()  # held 45 s
        blocker = db.try_acquire()
        assert blocker is not None
        late = asyncio.create_task(take())
        await asyncio.sleep(0)
        clock.advance(5)  # the late one times out: its wait is not in the histogram
        with pytest.raises(Overloaded):
            await late
        blocker.release()  # held 5 s

    asyncio.run(run())
    series = scrape(PrometheusCollector(db, idle))
    queue = "rust_py_rate_limit_concurrency_queue_seconds"
    lease = "rust_py_rate_limit_concurrency_lease_seconds"
    waited = only(series, f"{queue}_bucket")
    assert waited[labels(limiter="db", le="0.025")] == 0
    assert waited[labels(limiter="db", le="0.05")] == 1
    assert waited[labels(limiter="db", le="300.0")] == 1
    assert waited[labels(limiter="db", le="+Inf")] == 1
    assert only(series, f"{queue}_count") == {labels(limiter="db"): 1, labels(limiter="idle"): 0}
    assert only(series, f"{queue}_sum")[labels(limiter="db")] == pytest.approx(0.03)
    held = only(series, f"{lease}_bucket")
    assert held[labels(limiter="db", le="0.025")] == 0
    assert held[labels(limiter="db", le="0.05")] == 1
    assert held[labels(limiter="db", le="2.5")] == 1
    assert held[labels(limiter="db", le="5.0")] == 2
    assert held[labels(limiter="db", le="30.0")] == 2
    assert held[labels(limiter="db", le="60.0")] == 3
    assert held[labels(limiter="db", le="+Inf")] == 3
    assert held[labels(limiter="idle", le="+Inf")] == 0
    assert only(series, f"{lease}_sum")[labels(limiter="db")] == pytest.approx(50.03)
    buckets = {dict(key)["le"] for key in held if dict(key)["limiter"] == "db"}
    assert len(buckets) == 22, "21 bounds, 50 µs to 5 minutes, and +Inf"


def test_an_adaptive_limit_is_exported_as_it_moves(clock: ManualClock) -> None:
    pool = ConcurrencyLimiter("auto", adaptive="aimd", clock=clock)
    assert pool.name == "concurrency:auto"
    before = scrape(PrometheusCollector(pool))
    assert only(before, "rust_py_rate_limit_concurrency_limit") == {
        labels(limiter="concurrency:auto"): 3
    }, "the probe limit of a fresh limiter"
    run_service(pool, clock, workers=16, rounds=2000)
    assert pool.limit >= 8, "it learned the service's capacity"
    after = scrape(PrometheusCollector(pool))
    assert only(after, "rust_py_rate_limit_concurrency_limit") == {
        labels(limiter="concurrency:auto"): pool.limit
    }


def test_the_unkeyed_limiters_export_what_remains(clock: ManualClock) -> None:
    bucket = TokenBucket(2, 1, 5, clock=clock)
    gcra = Gcra(10, 1, clock=clock, name="gcra")
    window = FixedWindow(3, 10, clock=clock)
    sliding = SlidingWindow(4, 10, clock=clock)
    assert bucket.process() and bucket.process() and not bucket.process()
    assert window.allow()
    assert gcra.allow(cost=4)
    series = scrape(PrometheusCollector(bucket, gcra, window, sliding))
    assert only(series, "rust_py_rate_limit_remaining") == {
        labels(limiter="token_bucket:1/5s,capacity=2"): 0,
        labels(limiter="gcra"): 6,
        labels(limiter="fixed:3/10s"): 2,
        labels(limiter="sliding:4/10s"): 4,
    }
    assert not only(series, "rust_py_rate_limit_requests_total"), "they count no decisions"
    clock.advance(5)
    refilled = scrape(PrometheusCollector(bucket))
    assert only(refilled, "rust_py_rate_limit_remaining") == {
        labels(limiter="token_bucket:1/5s,capacity=2"): 1
    }


def test_one_collector_reads_every_kind_of_limiter_in_one_family_a_metric(
    clock: ManualClock,
) -> None:
    api = RateLimiter(1, 60, clock=clock)
    pool = ConcurrencyLimiter(3, name="pool")
    bucket = TokenBucket(5, 1, 1, clock=clock)
    api.allow("k")
    api.allow("k")
    with pool.acquire("tenant:a"):
        series = scrape(PrometheusCollector(api, pool, bucket))
    assert only(series, "rust_py_rate_limit_active_keys") == {
        labels(limiter="fixed:1/60s"): 1,
        labels(limiter="pool"): 1,
    }
    registry = CollectorRegistry()
    registry.register(PrometheusCollector(api, pool, bucket))
    families = [f.name for f in text_string_to_metric_families(generate_latest(registry).decode())]
    assert len(families) == len(set(families)), families


def test_every_kind_at_once_makes_an_exposition_both_parsers_read_back(clock: ManualClock) -> None:
    untracked = RateLimiter(1, 60, clock=clock, track_top=0, name="untracked")
    tracked = RateLimiter(1, 60, clock=clock, name='quote " and \\ back\nslash')
    down = RateLimiter(  # nothing listens on port 1: every round trip fails at once
        1, 60, storage="redis://:s3cret@127.0.0.1:1/0", on_storage_error="allow", name="down"
    )
    pool = ConcurrencyLimiter(2, name="pool")
    tenants = ConcurrencyLimiter(1, name="tenants", max_keys=8)
    unkeyed = (
        TokenBucket(2, 1, 5, clock=clock),
        Gcra(3, 1, clock=clock),
        FixedWindow(3, 10, clock=clock),
        SlidingWindow(4, 10, clock=clock),
    )
    for limiter in (untracked, tracked):
        for key in ("a", "a", 'b\n"}', 'b\n"}'):
            limiter.allow(key)
    assert down.allow("k") and down.storage_healthy is False
    with tenants.acquire("t:1"), pool.acquire():
        assert tenants.try_acquire("t:1") is None
    collector = PrometheusCollector(untracked, tracked, down, pool, tenants, *unkeyed)
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    described = {family.name for family in collector.describe()}
    assert described == set(families), "describe() names what collect() yields"
    assert "s3cret" not in text
    kinds = {name: family.type for name, family in families.items()}
    assert kinds["rust_py_rate_limit_requests"] == "counter"
    assert kinds["rust_py_rate_limit_storage_latency_seconds"] == "histogram"
    assert kinds["rust_py_rate_limit_remaining"] == "gauge"
    blocked = {
        s.labels["limiter"]: s.value
        for s in families["rust_py_rate_limit_requests"].samples
        if s.labels.get("result") == "blocked"
    }
    assert blocked == {"untracked": 2, 'quote " and \\ back\nslash': 2, "down": 0}
    top = {
        (s.labels["limiter"], s.labels["key"]): s.value
        for s in families["rust_py_rate_limit_top_blocked"].samples
    }
    odd = 'quote " and \\ back\nslash'
    assert top == {(odd, "a"): 1, (odd, 'b\n"}'): 1}
    for family in families.values():
        if family.type != "histogram":
            continue
        for limiter in {s.labels["limiter"] for s in family.samples}:
            buckets = [
                s.value
                for s in family.samples
                if s.name.endswith("_bucket") and s.labels["limiter"] == limiter
            ]
            [count] = [
                s.value
                for s in family.samples
                if s.name.endswith("_count") and s.labels["limiter"] == limiter
            ]
            assert buckets == sorted(buckets) and buckets[-1] == count, (family.name, limiter)
    openmetrics = openmetrics_generate(registry).decode()
    assert {f.name for f in openmetrics_parse(openmetrics)} == set(families)


def test_top_caps_the_keys_and_zero_leaves_them_out(clock: ManualClock) -> None:
    api = RateLimiter(1, 60, clock=clock, name="api")
    for key, tries in (("a", 2), ("b", 4), ("c", 3)):
        for _ in range(tries):
            api.allow(key)
    top1 = only(scrape(PrometheusCollector(api, top=1)), "rust_py_rate_limit_top_blocked")
    assert top1 == {labels(limiter="api", key="b"): 3}
    assert not only(scrape(PrometheusCollector(api, top=0)), "rust_py_rate_limit_top_blocked")
    untracked = RateLimiter(1, 60, clock=clock, track_top=0, name="untracked")
    untracked.allow("x")
    untracked.allow("x")
    series = scrape(PrometheusCollector(untracked))
    assert not only(series, "rust_py_rate_limit_top_blocked"), "track_top=0: nothing to export"
    assert (
        series[("rust_py_rate_limit_requests_total", labels(limiter="untracked", result="blocked"))]
        == 1
    )


def test_keys_can_be_hashed_with_a_salt_or_left_out(clock: ManualClock) -> None:
    api = RateLimiter(1, 60, clock=clock, name="api")
    for _ in range(3):
        api.allow("ip:203.0.113.7")
    salted = PrometheusCollector(api, metrics_keys="hash", salt=b"pepper")
    digest = hmac.new(b"pepper", b"ip:203.0.113.7", hashlib.sha256).hexdigest()[:16]
    assert only(scrape(salted), "rust_py_rate_limit_top_blocked") == {
        labels(limiter="api", key=digest): 2
    }
    text_salt = PrometheusCollector(api, metrics_keys="hash", salt="pepper")
    assert only(scrape(text_salt), "rust_py_rate_limit_top_blocked") == {
        labels(limiter="api", key=digest): 2
    }
    first, second = (
        only(
            scrape(PrometheusCollector(api, metrics_keys="hash")), "rust_py_rate_limit_top_blocked"
        )
        for _ in range(2)
    )
    assert len(first) == len(second) == 1
    assert first != second, "each collector draws its own salt"
    for series in (first, second):
        [key] = [value for name, value in next(iter(series)) if name == "key"]
        assert "203.0.113.7" not in key and len(key) == 16
    hidden = scrape(PrometheusCollector(api, metrics_keys="none"))
    assert not only(hidden, "rust_py_rate_limit_top_blocked")
    assert all("key" not in dict(labels_) for _, labels_ in hidden), "no key anywhere"
    assert (
        hidden[("rust_py_rate_limit_requests_total", labels(limiter="api", result="blocked"))] == 2
    )


def test_a_redis_limiter_exports_its_decisions_and_storage_errors_not_its_keys(
    own_server: RedisServer,
) -> None:
    limiter = RateLimiter(
        1, 3600, storage=own_server.url, key_prefix="prom", on_storage_error="allow", name="r"
    )
    limiter.reset("a")
    assert limiter.allow("a")
    assert not limiter.allow("a")
    assert limiter.storage_healthy is True
    up = scrape(PrometheusCollector(limiter))
    assert only(up, "rust_py_rate_limit_storage_up") == {labels(limiter="r"): 1}
    own_server.kill()
    assert limiter.allow("a"), "on_storage_error='allow'"
    assert limiter.storage_healthy is False, "the last round trip failed"
    series = scrape(PrometheusCollector(limiter))
    assert only(series, "rust_py_rate_limit_storage_up") == {labels(limiter="r"): 0}
    assert only(series, "rust_py_rate_limit_storage_errors_total") == {labels(limiter="r"): 1}
    assert only(series, "rust_py_rate_limit_top_blocked") == {labels(limiter="r", key="a"): 1}
    assert not only(series, "rust_py_rate_limit_active_keys"), "Redis keeps the keys"
    assert not only(series, "rust_py_rate_limit_rejected_full_total")
    # Three round trips timed: two answered, one failed (the server was gone).
    latency = only(series, "rust_py_rate_limit_storage_latency_seconds_count")
    assert latency == {labels(limiter="r"): 3}
    buckets = only(series, "rust_py_rate_limit_storage_latency_seconds_bucket")
    assert buckets[labels(limiter="r", le="+Inf")] == 3
    assert buckets[labels(limiter="r", le="1.0")] <= 3
    assert only(series, "rust_py_rate_limit_storage_latency_seconds_sum")[labels(limiter="r")] > 0


def test_register_uses_the_default_registry_and_returns_the_collector() -> None:
    limiter = RateLimiter(10, 60, name="test_register_default")
    collector = PrometheusCollector(limiter).register()
    try:
        text = generate_latest(REGISTRY).decode()
        assert 'rust_py_rate_limit_requests_total{limiter="test_register_default"' in text
    finally:
        REGISTRY.unregister(collector)
    registry = CollectorRegistry()
    assert PrometheusCollector(limiter).register(registry) is not None
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        PrometheusCollector(limiter).register(registry)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((), {}, ValueError, "needs at least one limiter"),
        (("api",), {}, TypeError, r"limiter 1 is a str \('api'\)"),
        ((RateLimiter(1, 1), None), {}, TypeError, r"limiter 2 is a NoneType \(None\)"),
        ((RateLimiter(1, 1), RateLimiter(1, 1)), {}, ValueError, r"both named 'fixed:1/1s'"),
        ((RateLimiter(1, 1),), {"top": True}, TypeError, r"`top` must be an int, not bool"),
        ((RateLimiter(1, 1),), {"top": 2.0}, TypeError, r"`top` must be an int, not float"),
        ((RateLimiter(1, 1),), {"top": -1}, ValueError, r"`top` must be from 0 .* got -1"),
        ((RateLimiter(1, 1),), {"top": 1001}, ValueError, r"`top` .* to 1000, got 1001"),
        ((RateLimiter(1, 1),), {"metrics_keys": "hashed"}, ValueError, r"got 'hashed'"),
        ((RateLimiter(1, 1),), {"metrics_keys": None}, TypeError, r"`metrics_keys` must be a str"),
        ((RateLimiter(1, 1),), {"salt": b"x"}, ValueError, r"`salt` applies only to .*'hash'"),
        ((RateLimiter(1, 1),), {"metrics_keys": "hash", "salt": b""}, ValueError, "`salt`"),
        ((RateLimiter(1, 1),), {"metrics_keys": "hash", "salt": 7}, TypeError, r"`salt`.*\(7\)"),
    ],
)
def test_bad_collector_arguments_are_named(
    args: tuple[object, ...], kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        PrometheusCollector(*args, **kwargs)  # type: ignore[arg-type]


def test_importing_the_package_does_not_import_prometheus_client(tmp_path: object) -> None:
    code = (
        "import sys\n"
        "import rust_py_rate_limit, rust_py_rate_limit.metrics\n"
        "print('prometheus_client' in sys.modules)\n"
        "rust_py_rate_limit.metrics.PrometheusCollector\n"
        "print('prometheus_client' in sys.modules)\n"
    )
    # From a temporary directory, so the installed package is the one imported.
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=str(tmp_path), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True"]
