"""``PrometheusCollector``: the limiters' counters, gauges and histograms as a
prometheus-client custom collector (the ``[prometheus]`` extra).

Each scrape reads the limiters as they are then (``stats()``, ``top_blocked()``, ``status``,
``storage_latency()``, ``queue_time()``, ``lease_duration()``): nothing is counted twice,
nothing is kept here between scrapes.
"""

from __future__ import annotations

from collections.abc import Iterator

try:
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
    )
    from prometheus_client.registry import REGISTRY, Collector, CollectorRegistry
except ModuleNotFoundError as missing:  # pragma: no cover - the extra is installed in tests
    raise ModuleNotFoundError(
        "rust_py_rate_limit.metrics.PrometheusCollector needs prometheus-client: "
        "pip install 'rust-py-rate-limit[prometheus]'",
        name=missing.name,
    ) from missing

from .._core import ConcurrencyLimiter, RateLimiter
from ..results import Histogram
from ._keys import MAX_TOP, KeyLabels, MetricsKeys, top_setting
from ._limiters import CONCURRENCY_OUTCOMES, AnyLimiter, checked_limiters

__all__ = ["MAX_TOP", "PrometheusCollector"]


_PREFIX = "rust_py_rate_limit_"

# (kind, name without the prefix (and without _total), help, labels besides `limiter`)
_RATE = (
    ("counter", "requests", "Rate limiter decisions, by result.", ("result",)),
    ("counter", "rejected_full", "New keys refused: the store was full (on_full='reject').", ()),
    ("counter", "evicted", "Key states evicted to make room (on_full='evict').", ()),
    ("counter", "storage_errors", "Round trips to the storage (Redis) that failed.", ()),
)
_ACTIVE_KEYS = ("gauge", "active_keys", "Keys tracked now.", ())
_STORAGE_UP = (
    "gauge",
    "storage_up",
    "1 while the storage (Redis) answers, 0 during an outage (the last round trip failed).",
    (),
)
# (name without the prefix, help): the histograms, in seconds
_LATENCY = (
    "storage_latency_seconds",
    "How long the decisions' round trips to the storage (Redis) took.",
)
_QUEUE_TIME = (
    "concurrency_queue_seconds",
    "How long the callers that queued waited until they were granted their permits.",
)
_LEASE = (
    "concurrency_lease_seconds",
    "How long concurrency permits were held, from grant to release.",
)
_TOP = (
    "gauge",
    "top_blocked",
    "Refusals of the most refused keys, since the limiter's tracker was last reset.",
    ("key",),
)
_CONCURRENCY = (
    (
        "counter",
        "concurrency_requests",
        "Concurrency limiter acquisitions, by how they ended (a refusal's reason: why).",
        ("result", "reason"),
    ),
    (
        "counter",
        "concurrency_deadline_missed",
        "Requests an overload layer answered because they passed its timeout (the SLA).",
        (),
    ),
    ("counter", "concurrency_enqueued", "Callers that waited in the queue.", ()),
    ("gauge", "concurrency_in_flight", "Permits held now.", ()),
    ("gauge", "concurrency_queued", "Callers waiting now.", ()),
    ("gauge", "concurrency_limit", "The limit now (an adaptive one moves).", ()),
    ("gauge", "concurrency_max_in_flight_seen", "The most permits held at once.", ()),
)
_UNKEYED = (("gauge", "remaining", "Requests of cost 1 an unkeyed limiter would admit now.", ()),)

_Spec = tuple[str, str, str, tuple[str, ...]]
_Family = CounterMetricFamily | GaugeMetricFamily


def _family(spec: _Spec) -> _Family:
    kind, name, documentation, labels = spec
    make = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
    return make(_PREFIX + name, documentation, labels=["limiter", *labels])


def _histogram_family(spec: tuple[str, str]) -> HistogramMetricFamily:
    name, documentation = spec
    return HistogramMetricFamily(_PREFIX + name, documentation, labels=["limiter"])


def _add_histogram(family: HistogramMetricFamily, name: str, histogram: Histogram) -> None:
    """One limiter's histogram as a family's samples (the ``+Inf`` bucket is its count)."""
    buckets = [(repr(bound), float(n)) for bound, n in histogram["buckets"]]
    buckets.append(("+Inf", float(histogram["count"])))
    family.add_metric([name], buckets, sum_value=histogram["sum"])


class PrometheusCollector(Collector):
    """The counters and gauges of ``limiters`` for prometheus-client.

    ``registry.register(PrometheusCollector(a, b))``, or ``PrometheusCollector(a, b).register()``
    for prometheus-client's default ``REGISTRY``. Every series has a ``limiter`` label, the
    limiter's ``name`` (two limiters with one name are a ``ValueError``).

    - ``top``: the most refused keys of each ``RateLimiter`` exported (its ``top_blocked``),
      10 by default; 0 for none.
    - ``metrics_keys``: how those keys appear: ``"plain"`` (as they are, the default),
      ``"hash"`` (the first 16 hex digits of an HMAC-SHA256 of the key, under ``salt`` or a
      random salt of this collector), ``"none"`` (no key series at all).
    """

    def __init__(
        self,
        *limiters: AnyLimiter,
        top: int = 10,
        metrics_keys: MetricsKeys = "plain",
        salt: bytes | str | None = None,
    ) -> None:
        self.limiters = checked_limiters(limiters, "PrometheusCollector")
        self.top = top_setting(top)
        self._keys = KeyLabels(metrics_keys, salt)

    @property
    def metrics_keys(self) -> MetricsKeys:
        return self._keys.mode

    def register(self, registry: CollectorRegistry | None = None) -> PrometheusCollector:
        """Registers this collector on ``registry`` (default: prometheus-client's ``REGISTRY``)
        and returns it."""
        (REGISTRY if registry is None else registry).register(self)
        return self

    def _specs(self) -> list[_Spec]:
        """The metric families this collector's limiters export, in the order they come."""
        kinds = {type(limiter) for limiter in self.limiters}
        specs: list[_Spec] = []
        rate = RateLimiter in kinds
        if rate:
            specs.extend(_RATE)
        if rate or ConcurrencyLimiter in kinds:
            specs.append(_ACTIVE_KEYS)
        if rate and self._shows_keys():
            specs.append(_TOP)
        if any(isinstance(x, RateLimiter) and x._remote for x in self.limiters):
            specs.append(_STORAGE_UP)
        if ConcurrencyLimiter in kinds:
            specs.extend(_CONCURRENCY)
        if kinds - {RateLimiter, ConcurrencyLimiter}:
            specs.extend(_UNKEYED)
        return specs

    def _shows_keys(self) -> bool:
        return self.top > 0 and self._keys.mode != "none"

    def _remote(self) -> list[RateLimiter]:
        """The limiters deciding on Redis, whose round trips are timed."""
        return [x for x in self.limiters if isinstance(x, RateLimiter) and x._remote]

    def _concurrency_limiters(self) -> list[ConcurrencyLimiter]:
        return [x for x in self.limiters if isinstance(x, ConcurrencyLimiter)]

    def describe(self) -> Iterator[_Family | HistogramMetricFamily]:
        """The families ``collect`` yields, without samples (how a registry finds name
        clashes without scraping)."""
        for spec in self._specs():
            yield _family(spec)
        if self._remote():
            yield _histogram_family(_LATENCY)
        if self._concurrency_limiters():
            yield _histogram_family(_QUEUE_TIME)
            yield _histogram_family(_LEASE)

    def collect(self) -> Iterator[_Family | HistogramMetricFamily]:
        """Every family, with one sample set per limiter, read now."""
        families = {spec[1]: _family(spec) for spec in self._specs()}
        for limiter in self.limiters:
            name = limiter.name
            if isinstance(limiter, RateLimiter):
                self._rate(families, name, limiter)
            elif isinstance(limiter, ConcurrencyLimiter):
                _concurrency(families, name, limiter)
            else:
                families["remaining"].add_metric([name], limiter.remaining())
        yield from families.values()
        remote = self._remote()
        if remote:
            yield _latency(remote)
        concurrency = self._concurrency_limiters()
        if concurrency:
            queue_time = _histogram_family(_QUEUE_TIME)
            lease = _histogram_family(_LEASE)
            for limiter in concurrency:
                _add_histogram(queue_time, limiter.name, limiter.queue_time())
                _add_histogram(lease, limiter.name, limiter.lease_duration())
            yield queue_time
            yield lease

    def _rate(self, families: dict[str, _Family], name: str, limiter: RateLimiter) -> None:
        stats = limiter.stats()
        requests = families["requests"]
        requests.add_metric([name, "allowed"], stats["allowed"])
        requests.add_metric([name, "blocked"], stats["blocked"])
        # On Redis the process does not know the keys nor the storage's fullness: no series.
        if not limiter._remote:
            families["active_keys"].add_metric([name], stats["active_keys"])
            families["rejected_full"].add_metric([name], stats["rejected_full"])
            families["evicted"].add_metric([name], stats["evicted"])
        families["storage_errors"].add_metric([name], stats["storage_errors"])
        if limiter._remote:
            families["storage_up"].add_metric([name], 1 if limiter.storage_healthy else 0)
        if self._shows_keys() and limiter.track_top > 0:
            top = families["top_blocked"]
            for label, refusals in self._keys.top(limiter.top_blocked(self.top)):
                top.add_metric([name, label], refusals)


def _latency(limiters: list[RateLimiter]) -> HistogramMetricFamily:
    """The Redis limiters' round-trip latency (``storage_latency()``), one histogram each."""
    family = _histogram_family(_LATENCY)
    for limiter in limiters:
        latency = limiter.storage_latency()
        if latency is not None:
            _add_histogram(family, limiter.name, latency)
    return family


def _concurrency(families: dict[str, _Family], name: str, limiter: ConcurrencyLimiter) -> None:
    stats = limiter.stats()
    requests = families["concurrency_requests"]
    for field, result, reason in CONCURRENCY_OUTCOMES:
        requests.add_metric([name, result, reason or ""], stats[field])  # type: ignore[literal-required]
    families["concurrency_deadline_missed"].add_metric([name], stats["deadline_missed"])
    families["concurrency_enqueued"].add_metric([name], stats["queued_total"])
    families["active_keys"].add_metric([name], stats["active_keys"])
    families["concurrency_in_flight"].add_metric([name], stats["in_flight"])
    families["concurrency_queued"].add_metric([name], stats["queued"])
    families["concurrency_limit"].add_metric([name], limiter.limit)
    families["concurrency_max_in_flight_seen"].add_metric([name], stats["max_in_flight_seen"])
