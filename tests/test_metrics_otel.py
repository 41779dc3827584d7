"""``rust_py_rate_limit.metrics.instrument``: the data points an OpenTelemetry SDK collects
(``InMemoryMetricReader``) after known sequences of decisions; close(); the bad inputs."""

from __future__ import annotations

import hashlib
import hmac
import subprocess
import sys

import pytest
from concurrency_outcomes import OUTCOMES, run_every_outcome
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import Gauge, InMemoryMetricReader, Sum
from redis_support import RedisServer

from rust_py_rate_limit import (
    ConcurrencyLimiter,
    FixedWindow,
    Gcra,
    ManualClock,
    RateLimiter,
    SlidingWindow,
    TokenBucket,
    __version__,
)
from rust_py_rate_limit.metrics import Instrumentation, instrument

NS = "rust_py_rate_limit.rate_limiting."
LIMITER = NS + "limiter"
RESULT = NS + "result"
KEY = NS + "key"

Points = dict[frozenset[tuple[str, object]], int | float]


class Collected:
    """One collection: each metric's unit, kind and data points, by attributes (a metric with
    no data points is left out)."""

    def __init__(self, reader: InMemoryMetricReader) -> None:
        self.points: dict[str, Points] = {}
        self.units: dict[str, str] = {}
        self.kinds: dict[str, str] = {}
        self.scopes: set[tuple[str, str | None]] = set()
        data = reader.get_metrics_data()
        if data is None:
            return
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                self.scopes.add((scope.scope.name, scope.scope.version))
                for metric in scope.metrics:
                    if not metric.data.data_points:
                        continue  # opentelemetry-sdk 1.20 lists an instrument with no points
                    assert metric.name not in self.points, f"{metric.name} came twice"
                    self.units[metric.name] = metric.unit or ""
                    kind = metric.data
                    if isinstance(kind, Sum):
                        self.kinds[metric.name] = "counter" if kind.is_monotonic else "updown"
                    else:
                        assert isinstance(kind, Gauge)
                        self.kinds[metric.name] = "gauge"
                    self.points[metric.name] = {
                        frozenset((p.attributes or {}).items()): p.value for p in kind.data_points
                    }

    def __getitem__(self, short_name: str) -> Points:
        return self.points.get(NS + short_name, {})


#: Why a ConcurrencyLimiter refused, as the `reason` attribute says.
REASONS = ("no_permit", "queue_full", "shed", "max_keys")


def attrs(limiter: str, **more: str) -> frozenset[tuple[str, object]]:
    return frozenset({LIMITER: limiter, **{NS + k: v for k, v in more.items()}}.items())


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def provider(reader: InMemoryMetricReader) -> MeterProvider:
    return MeterProvider(metric_readers=[reader])


def test_a_rate_limiter_reports_its_decisions_keys_and_top_offenders(
    clock: ManualClock, reader: InMemoryMetricReader, provider: MeterProvider
) -> None:
    api = RateLimiter(2, 60, name="api", clock=clock)
    for key, tries in (("ip:a", 3), ("ip:b", 5), ("ip:c", 1)):
        for _ in range(tries):
            api.allow(key)
    with instrument(api, meter_provider=provider):
        seen = Collected(reader)
        assert seen.scopes == {("rust_py_rate_limit", __version__)}
        assert seen["requests"] == {
            attrs("api", result="acquired"): 5,
            attrs("api", result="rejected"): 4,
        }
        assert seen.kinds[NS + "requests"] == "counter"
        assert seen.units[NS + "requests"] == "{request}"
        assert seen["active_keys"] == {attrs("api"): 3}
        assert seen.kinds[NS + "active_keys"] == "updown"
        assert seen["top_blocked"] == {attrs("api", key="ip:b"): 3, attrs("api", key="ip:a"): 1}
        assert seen.kinds[NS + "top_blocked"] == "gauge"
        for counter in ("rejected_full", "evicted", "storage.errors"):
            assert seen[counter] == {attrs("api"): 0}, counter
            assert seen.kinds[NS + counter] == "counter"
        assert not seen["storage.round_trips"], "in process: no round trips"
        clock.advance(60)
        assert api.allow("ip:b")
        again = Collected(reader)
        assert again["requests"][attrs("api", result="acquired")] == 6, "read at collection"
        assert again["requests"][attrs("api", result="rejected")] == 4, "not counted twice"
    assert api.top_blocked() == [("ip:b", 3), ("ip:a", 1)], "collecting does not reset it"


def test_a_concurrency_limiter_reports_leases_queue_and_results(
    clock: ManualClock, reader: InMemoryMetricReader, provider: MeterProvider
) -> None:
    handles: list[Instrumentation] = []

    def check(db: ConcurrencyLimiter) -> None:
        handles.append(instrument(db, meter_provider=provider))
        seen = Collected(reader)
        assert seen["requests"] == {
            attrs(
                "db",
                result="request_canceled" if result == "cancelled" else result,
                **({"reason": reason} if reason else {}),
            ): count
            for (result, reason), count in OUTCOMES.items()
        }
        assert seen["deadline_missed"] == {attrs("db"): 1}
        assert seen["active_request_leases"] == {attrs("db"): 2}
        assert seen["queued_requests"] == {attrs("db"): 2}
        assert seen.kinds[NS + "active_request_leases"] == "updown"
        assert seen.kinds[NS + "queued_requests"] == "updown"
        assert seen["enqueued_requests"] == {attrs("db"): 5}
        assert seen["lease_limit"] == {attrs("db"): 2}
        assert seen["peak_active_request_leases"] == {attrs("db"): 2}
        assert seen["active_keys"] == {attrs("db"): 0}

    run_every_outcome(clock, check)
    after = Collected(reader)
    assert after["active_request_leases"] == {attrs("db"): 0}
    assert after["queued_requests"] == {attrs("db"): 0}
    assert after["requests"][attrs("db", result="acquired")] == 4
    # Two granted waiters, at once (timed-out, cancelled and shed waiters are not timed);
    # two leases held 1 s and the waiters' for no time.
    assert after["request.time_in_queue.count"] == {attrs("db"): 2}
    assert after["request.time_in_queue.sum"] == {attrs("db"): 0.0}
    assert after["request_lease.duration.count"] == {attrs("db"): 4}
    assert after["request_lease.duration.sum"] == {attrs("db"): 2.0}
    handles[0].close()


def test_the_unkeyed_limiters_report_what_remains(
    clock: ManualClock, reader: InMemoryMetricReader, provider: MeterProvider
) -> None:
    bucket = TokenBucket(2, 1, 5, clock=clock)
    gcra = Gcra(10, 1, clock=clock, name="gcra")
    window = FixedWindow(3, 10, clock=clock)
    sliding = SlidingWindow(4, 10, clock=clock)
    assert bucket.process() and bucket.process() and not bucket.process()
    assert window.allow()
    assert gcra.allow(cost=4)
    with instrument(bucket, gcra, window, sliding, meter_provider=provider):
        seen = Collected(reader)
        assert seen["remaining"] == {
            attrs("token_bucket:1/5s,capacity=2"): 0,
            attrs("gcra"): 6,
            attrs("fixed:3/10s"): 2,
            attrs("sliding:4/10s"): 4,
        }
        assert set(seen.points) == {NS + "remaining"}, "they count no decisions"
        clock.advance(5)
        assert Collected(reader)["remaining"][attrs("token_bucket:1/5s,capacity=2")] == 1


def test_every_data_point_names_its_limiter_in_one_metric_a_name(
    clock: ManualClock, reader: InMemoryMetricReader, provider: MeterProvider
) -> None:
    api = RateLimiter(1, 60, clock=clock)
    pool = ConcurrencyLimiter(3, name="pool")
    bucket = TokenBucket(5, 1, 1, clock=clock)
    api.allow("k")
    api.allow("k")
    with instrument(api, pool, bucket, meter_provider=provider), pool.acquire("tenant:a"):
        seen = Collected(reader)
    assert seen["active_keys"] == {attrs("fixed:1/60s"): 1, attrs("pool"): 1}
    for name, points in seen.points.items():
        for point in points:
            assert dict(point)[LIMITER] in {"fixed:1/60s", "pool", "token_bucket:1/1s,capacity=5"}
        assert seen.units[name] in {"{request}", "{key}", "{error}", "s", "1"}, name


def test_top_caps_the_keys_and_keys_can_be_hashed_or_left_out(
    clock: ManualClock, reader: InMemoryMetricReader, provider: MeterProvider
) -> None:
    api = RateLimiter(1, 60, clock=clock, name="api")
    for key, tries in (("ip:203.0.113.7", 4), ("b", 3), ("c", 2)):
        for _ in range(tries):
            api.allow(key)
    with instrument(api, meter_provider=provider, top=1):
        assert Collected(reader)["top_blocked"] == {attrs("api", key="ip:203.0.113.7"): 3}
    with instrument(api, meter_provider=provider, metrics_keys="hash", salt="pepper", top=1):
        digest = hmac.new(b"pepper", b"ip:203.0.113.7", hashlib.sha256).hexdigest()[:16]
        assert Collected(reader)["top_blocked"] == {attrs("api", key=digest): 3}
    other = InMemoryMetricReader()
    with instrument(api, meter_provider=MeterProvider(metric_readers=[other]), top=0):
        zero = Collected(other)
        assert not zero["top_blocked"] and zero["requests"], "top=0: no key series"
    hidden_reader = InMemoryMetricReader()
    hidden_provider = MeterProvider(metric_readers=[hidden_reader])
    with instrument(api, meter_provider=hidden_provider, metrics_keys="none"):
        hidden = Collected(hidden_reader)
    assert NS + "top_blocked" not in hidden.points
    assert hidden["requests"][attrs("api", result="rejected")] == 6
    for points in hidden.points.values():
        assert all(KEY not in dict(point) for point in points), "no key anywhere"


def test_hidden_keys_stay_hidden_beside_an_instrumentation_that_shows_them(
    clock: ManualClock, reader: InMemoryMetricReader, provider: MeterProvider
) -> None:
    # One top_blocked instrument a provider, whose callback reads both instrumentations:
    # each must apply its own metrics_keys.
    shown = RateLimiter(1, 60, clock=clock, name="shown")
    hidden = RateLimiter(1, 60, clock=clock, name="hidden")
    hashed = RateLimiter(1, 60, clock=clock, name="hashed")
    for limiter in (shown, hidden, hashed):
        for _ in range(3):
            limiter.allow("ip:203.0.113.7")
    with (
        instrument(shown, meter_provider=provider),
        instrument(hidden, meter_provider=provider, metrics_keys="none"),
        instrument(hashed, meter_provider=provider, metrics_keys="hash", salt="pepper"),
    ):
        collected = Collected(reader)
    digest = hmac.new(b"pepper", b"ip:203.0.113.7", hashlib.sha256).hexdigest()[:16]
    assert collected["top_blocked"] == {
        attrs("shown", key="ip:203.0.113.7"): 2,
        attrs("hashed", key=digest): 2,
    }
    assert collected["requests"][attrs("hidden", result="rejected")] == 2


def test_close_stops_the_reporting_and_a_new_instrumentation_takes_over(
    clock: ManualClock, reader: InMemoryMetricReader, provider: MeterProvider
) -> None:
    api = RateLimiter(1, 60, clock=clock, name="api")
    api.allow("k")
    handle = instrument(api, meter_provider=provider)
    assert isinstance(handle, Instrumentation)
    assert Collected(reader)["requests"][attrs("api", result="acquired")] == 1
    handle.close()
    assert handle.closed
    handle.close()  # twice: nothing more
    assert Collected(reader).points == {}, "closed: nothing reported"
    with instrument(api, meter_provider=provider):
        with pytest.raises(ValueError, match="'api' is already reported"):
            instrument(api, meter_provider=provider)
        assert Collected(reader)["requests"][attrs("api", result="acquired")] == 1
    # The instruments stay on the provider; a new instrumentation's callbacks are the ones read.
    renamed = RateLimiter(1, 60, clock=clock, name="api2")
    with instrument(renamed, meter_provider=provider):
        assert renamed.allow("k")
        assert Collected(reader)["requests"] == {
            attrs("api2", result="acquired"): 1,
            attrs("api2", result="rejected"): 0,
        }
    assert Collected(reader).points == {}


def test_two_instrumentations_on_one_provider_report_side_by_side(
    clock: ManualClock, reader: InMemoryMetricReader, provider: MeterProvider
) -> None:
    a = RateLimiter(1, 60, clock=clock, name="a")
    pool = ConcurrencyLimiter(2, name="pool")
    first = instrument(a, meter_provider=provider)
    second = instrument(pool, meter_provider=provider)
    seen = Collected(reader)
    assert seen["requests"].keys() == {
        attrs("a", result="acquired"),
        attrs("a", result="rejected"),
        attrs("pool", result="acquired"),
        *(attrs("pool", result="rejected", reason=r) for r in REASONS),
        attrs("pool", result="timed_out"),
        attrs("pool", result="request_canceled"),
    }
    assert seen["lease_limit"] == {attrs("pool"): 2}
    first.close()
    assert {dict(p)[LIMITER] for p in Collected(reader)["requests"]} == {"pool"}
    second.close()


def test_the_global_provider_is_the_default() -> None:
    # Whatever the global provider is (the API's proxy here), instrument() uses it.
    handle = instrument(RateLimiter(1, 60, name="test_global_default"))
    assert repr(handle) == "<Instrumentation open limiters=['test_global_default']>"
    handle.close()
    assert repr(handle) == "<Instrumentation closed limiters=['test_global_default']>"
    with instrument(RateLimiter(1, 60, name="noop"), meter_provider=NoOpMeterProvider()):
        pass


def test_a_redis_limiter_reports_its_round_trips_and_errors_not_its_keys(
    own_server: RedisServer, reader: InMemoryMetricReader, provider: MeterProvider
) -> None:
    limiter = RateLimiter(
        1, 3600, storage=own_server.url, key_prefix="otel", on_storage_error="allow", name="r"
    )
    limiter.reset("a")
    assert limiter.allow("a")
    assert not limiter.allow("a")
    with instrument(limiter, meter_provider=provider):
        assert Collected(reader)["storage.up"] == {attrs("r"): 1}
    own_server.kill()
    assert limiter.allow("a"), "on_storage_error='allow'"
    with instrument(limiter, meter_provider=provider):
        seen = Collected(reader)
    assert seen["storage.up"] == {attrs("r"): 0}, "an outage under way"
    assert seen["storage.errors"] == {attrs("r"): 1}
    assert seen["top_blocked"] == {attrs("r", key="a"): 1}
    assert not seen["active_keys"], "Redis keeps the keys"
    assert not seen["rejected_full"]
    # Four round trips timed: the reset, two answered, one failed (the server was gone).
    latency = limiter.storage_latency()
    assert latency is not None
    assert seen["storage.round_trips"] == {attrs("r"): latency["count"]}
    assert latency["count"] >= 3
    assert seen.units[NS + "storage.round_trip_time"] == "s"
    assert seen["storage.round_trip_time"] == {attrs("r"): latency["sum"]}
    assert latency["sum"] > 0


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((), {}, ValueError, "needs at least one limiter"),
        (("api",), {}, TypeError, r"limiter 1 is a str \('api'\)"),
        ((RateLimiter(1, 1), None), {}, TypeError, r"limiter 2 is a NoneType \(None\)"),
        ((RateLimiter(1, 1), RateLimiter(1, 1)), {}, ValueError, r"both named 'fixed:1/1s'"),
        ((RateLimiter(1, 1),), {"top": True}, TypeError, r"`top` must be an int, not bool"),
        ((RateLimiter(1, 1),), {"top": -1}, ValueError, r"`top` must be from 0 .* got -1"),
        ((RateLimiter(1, 1),), {"top": 1001}, ValueError, r"`top` .* to 1000, got 1001"),
        ((RateLimiter(1, 1),), {"metrics_keys": "hashed"}, ValueError, r"got 'hashed'"),
        ((RateLimiter(1, 1),), {"metrics_keys": None}, TypeError, r"`metrics_keys` must be a str"),
        ((RateLimiter(1, 1),), {"salt": b"x"}, ValueError, r"`salt` applies only to .*'hash'"),
        ((RateLimiter(1, 1),), {"metrics_keys": "hash", "salt": 7}, TypeError, r"`salt`.*\(7\)"),
        ((RateLimiter(1, 1),), {"meter_provider": "otel"}, TypeError, r"MeterProvider .*'otel'"),
    ],
)
def test_bad_instrument_arguments_are_named(
    args: tuple[object, ...], kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        instrument(*args, **kwargs)  # type: ignore[arg-type]


def test_importing_the_package_does_not_import_opentelemetry(tmp_path: object) -> None:
    code = (
        "import sys\n"
        "import rust_py_rate_limit, rust_py_rate_limit.metrics\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
        "from rust_py_rate_limit.metrics import instrument\n"
        "print('opentelemetry.metrics' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=str(tmp_path), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["[]", "True"]
