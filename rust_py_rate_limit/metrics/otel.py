"""``instrument()``: the limiters' counters and gauges as OpenTelemetry observable instruments
(the ``[otel]`` extra, opentelemetry-api).

The instruments are asynchronous: their callbacks read the limiters when the SDK collects
(``stats()``, ``top_blocked()``, ``storage_latency()``, ``limit``, ``remaining()``), so nothing
is counted twice and nothing is kept here between collections. Names and attributes follow
ASP.NET Core's rate-limiting metrics (``aspnetcore.rate_limiting.*``) under this library's own
namespace.

The OpenTelemetry API has no way to unregister an instrument's callback, and the SDK hands back
the instrument it already has (with its first callbacks) when one of the same name is created
again. So each meter provider gets each instrument once, whose callback reads every open
:class:`Instrumentation` on that provider: ``close()`` takes one out of that list.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, cast

try:
    from opentelemetry import metrics as _otel
    from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation
except ModuleNotFoundError as missing:  # pragma: no cover - the extra is installed in tests
    raise ModuleNotFoundError(
        "rust_py_rate_limit.metrics.instrument needs opentelemetry-api: "
        "pip install 'rust-py-rate-limit[otel]'",
        name=missing.name,
    ) from missing

from .._core import ConcurrencyLimiter, RateLimiter, __version__
from ._keys import KeyLabels, MetricsKeys, top_setting
from ._limiters import CONCURRENCY_OUTCOMES, UNKEYED, AnyLimiter, checked_limiters

__all__ = [
    "ATTRIBUTE_KEY",
    "ATTRIBUTE_LIMITER",
    "ATTRIBUTE_REASON",
    "ATTRIBUTE_RESULT",
    "METER_NAME",
    "Instrumentation",
    "instrument",
]

#: The meter the instruments are created under (with the package's version).
METER_NAME = "rust_py_rate_limit"

_PREFIX = "rust_py_rate_limit.rate_limiting."

#: Every data point's limiter: its ``name``.
ATTRIBUTE_LIMITER = _PREFIX + "limiter"
#: How a request ended, on ``rust_py_rate_limit.rate_limiting.requests``.
ATTRIBUTE_RESULT = _PREFIX + "result"
#: Why a ConcurrencyLimiter refused (``"no_permit"``, ``"queue_full"``, ``"shed"``,
#: ``"max_keys"``), on ``...rate_limiting.requests`` with ``result="rejected"``.
ATTRIBUTE_REASON = _PREFIX + "reason"
#: A refused key (as ``metrics_keys`` shows it), on ``...rate_limiting.top_blocked``.
ATTRIBUTE_KEY = _PREFIX + "key"

# The `result` of a decision: ASP.NET Core's "acquired" and "request_canceled" where they mean
# what ours do; its refusals name the limiter that refused ("endpoint_limiter",
# "global_limiter"), which the `limiter` attribute does here, so a refusal is "rejected".
_RATE_RESULTS = (("allowed", "acquired"), ("blocked", "rejected"))
# A ConcurrencyLimiter's: its outcomes, "cancelled" spelled as ASP.NET Core spells it.
_CONCURRENCY_RESULTS = {"cancelled": "request_canceled"}

Kind = Literal["counter", "up_down_counter", "gauge"]
_Points = Iterable[tuple[int | float, dict[str, str]]]


@dataclass(frozen=True)
class _Spec:
    """One instrument: what it is, and what it reads from each limiter it applies to."""

    kind: Kind
    name: str
    unit: str
    description: str
    applies: Callable[[AnyLimiter], bool]
    read: Callable[[Instrumentation, AnyLimiter], _Points]


def _is_rate(limiter: AnyLimiter) -> bool:
    return isinstance(limiter, RateLimiter)


def _in_process_rate(limiter: AnyLimiter) -> bool:
    # On Redis the process does not know the keys nor the storage's fullness.
    return isinstance(limiter, RateLimiter) and not limiter._remote


def _remote_rate(limiter: AnyLimiter) -> bool:
    return isinstance(limiter, RateLimiter) and limiter._remote


def _is_concurrency(limiter: AnyLimiter) -> bool:
    return isinstance(limiter, ConcurrencyLimiter)


def _has_keys(limiter: AnyLimiter) -> bool:
    return _in_process_rate(limiter) or _is_concurrency(limiter)


def _is_unkeyed(limiter: AnyLimiter) -> bool:
    return isinstance(limiter, UNKEYED)


def _requests(_: Instrumentation, limiter: AnyLimiter) -> _Points:
    assert isinstance(limiter, RateLimiter | ConcurrencyLimiter)
    stats = cast("Mapping[str, int]", limiter.stats())
    if isinstance(limiter, RateLimiter):
        return [(stats[ours], {ATTRIBUTE_RESULT: theirs}) for ours, theirs in _RATE_RESULTS]
    points: list[tuple[int | float, dict[str, str]]] = []
    for field, result, reason in CONCURRENCY_OUTCOMES:
        attributes = {ATTRIBUTE_RESULT: _CONCURRENCY_RESULTS.get(result, result)}
        if reason is not None:
            attributes[ATTRIBUTE_REASON] = reason
        points.append((stats[field], attributes))
    return points


def _stat(field: str) -> Callable[[Instrumentation, AnyLimiter], _Points]:
    """Reads one field of ``stats()`` (a RateLimiter's or a ConcurrencyLimiter's)."""

    def read(_: Instrumentation, limiter: AnyLimiter) -> _Points:
        assert isinstance(limiter, RateLimiter | ConcurrencyLimiter)
        stats = cast("Mapping[str, int]", limiter.stats())
        return [(stats[field], {})]

    return read


def _top_blocked(handle: Instrumentation, limiter: AnyLimiter) -> _Points:
    assert isinstance(limiter, RateLimiter)
    if handle.top == 0 or limiter.track_top == 0:
        return []
    pairs = handle._keys.top(limiter.top_blocked(handle.top))
    return [(refusals, {ATTRIBUTE_KEY: label}) for label, refusals in pairs]


def _latency(field: Literal["count", "sum"]) -> Callable[[Instrumentation, AnyLimiter], _Points]:
    def read(_: Instrumentation, limiter: AnyLimiter) -> _Points:
        assert isinstance(limiter, RateLimiter)
        latency = limiter.storage_latency()
        return [] if latency is None else [(latency[field], {})]

    return read


def _held(
    which: Literal["queue_time", "lease_duration"], field: Literal["count", "sum"]
) -> Callable[[Instrumentation, AnyLimiter], _Points]:
    """A ConcurrencyLimiter histogram's count or sum (``queue_time()``, ``lease_duration()``)."""

    def read(_: Instrumentation, limiter: AnyLimiter) -> _Points:
        assert isinstance(limiter, ConcurrencyLimiter)
        histogram = getattr(limiter, which)()
        return [(histogram[field], {})]

    return read


def _storage_up(_: Instrumentation, limiter: AnyLimiter) -> _Points:
    assert isinstance(limiter, RateLimiter)
    return [(1 if limiter.storage_healthy else 0, {})]


def _lease_limit(_: Instrumentation, limiter: AnyLimiter) -> _Points:
    assert isinstance(limiter, ConcurrencyLimiter)
    return [(limiter.limit, {})]


def _remaining(_: Instrumentation, limiter: AnyLimiter) -> _Points:
    assert isinstance(limiter, UNKEYED)
    return [(limiter.remaining(), {})]


_SPECS = (
    _Spec(
        "counter",
        "requests",
        "{request}",
        "Requests that tried to acquire a permit, by result.",
        lambda x: _is_rate(x) or _is_concurrency(x),
        _requests,
    ),
    _Spec(
        "up_down_counter",
        "active_request_leases",
        "{request}",
        "Permits held now (a request of cost n holds n).",
        _is_concurrency,
        _stat("in_flight"),
    ),
    _Spec(
        "up_down_counter",
        "queued_requests",
        "{request}",
        "Requests waiting for a permit now.",
        _is_concurrency,
        _stat("queued"),
    ),
    _Spec(
        "counter",
        "deadline_missed",
        "{request}",
        "Requests an overload layer answered because they passed its timeout (the SLA).",
        _is_concurrency,
        _stat("deadline_missed"),
    ),
    _Spec(
        "counter",
        "enqueued_requests",
        "{request}",
        "Requests that waited in the queue.",
        _is_concurrency,
        _stat("queued_total"),
    ),
    _Spec(
        "gauge",
        "lease_limit",
        "{request}",
        "The concurrency limit now (an adaptive one moves).",
        _is_concurrency,
        _lease_limit,
    ),
    _Spec(
        "gauge",
        "peak_active_request_leases",
        "{request}",
        "The most permits held at once.",
        _is_concurrency,
        _stat("max_in_flight_seen"),
    ),
    _Spec(
        "up_down_counter",
        "active_keys",
        "{key}",
        "Keys tracked now.",
        _has_keys,
        _stat("active_keys"),
    ),
    _Spec(
        "gauge",
        "top_blocked",
        "{request}",
        "Refusals of the most refused keys, since the limiter's tracker was last reset.",
        _is_rate,
        _top_blocked,
    ),
    _Spec(
        "counter",
        "rejected_full",
        "{request}",
        "Requests of new keys refused: the store was full (on_full='reject').",
        _in_process_rate,
        _stat("rejected_full"),
    ),
    _Spec(
        "counter",
        "evicted",
        "{key}",
        "Key states evicted to make room (on_full='evict').",
        _in_process_rate,
        _stat("evicted"),
    ),
    _Spec(
        "counter",
        "storage.errors",
        "{error}",
        "Round trips to the storage (Redis) that failed.",
        _is_rate,
        _stat("storage_errors"),
    ),
    _Spec(
        "gauge",
        "storage.up",
        "1",
        "1 while the storage (Redis) answers, 0 during an outage (the last round trip failed).",
        _remote_rate,
        _storage_up,
    ),
    _Spec(
        "counter",
        "storage.round_trips",
        "{round_trip}",
        "Round trips to the storage (Redis), failed ones included.",
        _remote_rate,
        _latency("count"),
    ),
    _Spec(
        "counter",
        "storage.round_trip_time",
        "s",
        "The total duration of the round trips to the storage (Redis).",
        _remote_rate,
        _latency("sum"),
    ),
    _Spec(
        "counter",
        "request.time_in_queue.count",
        "{request}",
        "Requests granted a permit after waiting in the queue.",
        _is_concurrency,
        _held("queue_time", "count"),
    ),
    _Spec(
        "counter",
        "request.time_in_queue.sum",
        "s",
        "The total time granted requests waited in the queue.",
        _is_concurrency,
        _held("queue_time", "sum"),
    ),
    _Spec(
        "counter",
        "request_lease.duration.count",
        "{request}",
        "Leases released.",
        _is_concurrency,
        _held("lease_duration", "count"),
    ),
    _Spec(
        "counter",
        "request_lease.duration.sum",
        "s",
        "The total time released leases were held.",
        _is_concurrency,
        _held("lease_duration", "sum"),
    ),
    _Spec(
        "gauge",
        "remaining",
        "{request}",
        "Requests of cost 1 an unkeyed limiter would admit now.",
        _is_unkeyed,
        _remaining,
    ),
)

#: Every instrument's full name, in the order they are created.
INSTRUMENT_NAMES = tuple(_PREFIX + spec.name for spec in _SPECS)


class _Provider:
    """One meter provider's instruments (each created once) and the open handles they read."""

    def __init__(self, meter: Meter) -> None:
        self.meter = meter
        self.created: set[str] = set()
        self.handles: tuple[Instrumentation, ...] = ()

    def create(self, spec: _Spec) -> None:
        """Creates ``spec``'s instrument on this provider, the first time it is needed."""
        if spec.name in self.created:
            return
        callback = self._callback(spec)
        name = _PREFIX + spec.name
        make = {
            "counter": self.meter.create_observable_counter,
            "up_down_counter": self.meter.create_observable_up_down_counter,
            "gauge": self.meter.create_observable_gauge,
        }[spec.kind]
        make(name, callbacks=[callback], unit=spec.unit, description=spec.description)
        self.created.add(spec.name)

    def _callback(self, spec: _Spec) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(_: CallbackOptions) -> Iterator[Observation]:
            for handle in self.handles:  # a tuple, replaced whole: no lock needed to read it
                for limiter in handle._limiters:
                    if not spec.applies(limiter):
                        continue
                    name = limiter.name
                    for value, attributes in spec.read(handle, limiter):
                        yield Observation(value, {ATTRIBUTE_LIMITER: name, **attributes})

        return observe


_LOCK = threading.Lock()
_PROVIDERS: weakref.WeakKeyDictionary[MeterProvider, _Provider] = weakref.WeakKeyDictionary()


class Instrumentation:
    """What :func:`instrument` returns: its limiters are reported until ``close()`` (or the
    end of a ``with`` block)."""

    def __init__(
        self,
        limiters: tuple[AnyLimiter, ...],
        top: int,
        keys: KeyLabels,
        provider: _Provider,
    ) -> None:
        self._limiters = limiters
        self.top = top
        self._keys = keys
        self._provider = provider
        self.limiter_names = tuple(limiter.name for limiter in limiters)

    @property
    def metrics_keys(self) -> MetricsKeys:
        return self._keys.mode

    @property
    def closed(self) -> bool:
        return not self._limiters

    def close(self) -> None:
        """Stops reporting these limiters (and lets go of them); closing twice does nothing."""
        with _LOCK:
            provider = self._provider
            provider.handles = tuple(h for h in provider.handles if h is not self)
            self._limiters = ()

    def __enter__(self) -> Instrumentation:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Instrumentation {state} limiters={list(self.limiter_names)!r}>"


def instrument(
    *limiters: AnyLimiter,
    meter_provider: MeterProvider | None = None,
    top: int = 10,
    metrics_keys: MetricsKeys = "plain",
    salt: bytes | str | None = None,
) -> Instrumentation:
    """Reports ``limiters`` through OpenTelemetry observable instruments on the meter
    ``rust_py_rate_limit`` of ``meter_provider`` (default: the global one), until the returned
    handle is closed.

    Every data point has a ``rust_py_rate_limit.rate_limiting.limiter`` attribute, the
    limiter's ``name``. ``top``, ``metrics_keys`` and ``salt`` are as for
    ``PrometheusCollector``: how many of each ``RateLimiter``'s most refused keys are reported,
    and how (``"plain"``, ``"hash"``, ``"none"``).
    """
    checked = checked_limiters(limiters, "instrument()")
    top = top_setting(top)
    keys = KeyLabels(metrics_keys, salt)
    if meter_provider is None:
        meter_provider = _otel.get_meter_provider()
    elif not isinstance(meter_provider, MeterProvider):
        raise TypeError(
            "`meter_provider` must be an opentelemetry MeterProvider or None, not "
            f"{type(meter_provider).__name__} ({meter_provider!r})"
        )
    with _LOCK:
        provider = _PROVIDERS.get(meter_provider)
        if provider is None:
            meter = meter_provider.get_meter(METER_NAME, __version__)
            provider = _PROVIDERS[meter_provider] = _Provider(meter)
        taken = {name for handle in provider.handles for name in handle.limiter_names}
        for limiter in checked:
            if limiter.name in taken:
                raise ValueError(
                    f"instrument(): a limiter named {limiter.name!r} is already reported on "
                    "this meter provider; close() that instrumentation first, or give this "
                    "limiter a name= of its own"
                )
        handle = Instrumentation(checked, top, keys, provider)
        for spec in _SPECS:
            if spec.name == "top_blocked" and (top == 0 or keys.mode == "none"):
                continue
            if any(spec.applies(limiter) for limiter in checked):
                provider.create(spec)
        provider.handles = (*provider.handles, handle)
    return handle
