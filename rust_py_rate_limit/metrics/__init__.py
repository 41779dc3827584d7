"""Metrics exporters for the limiters: :class:`PrometheusCollector` (the ``[prometheus]``
extra, prometheus-client) and :func:`instrument` (the ``[otel]`` extra, opentelemetry-api).

Nothing here is imported by ``import rust_py_rate_limit``, and an exporter's client library
is imported only when that exporter is first used (``rust_py_rate_limit.metrics`` alone imports
none).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .otel import Instrumentation, instrument
    from .prometheus import PrometheusCollector

__all__ = ["Instrumentation", "PrometheusCollector", "instrument"]


def __getattr__(name: str) -> Any:
    if name == "PrometheusCollector":
        from .prometheus import PrometheusCollector

        return PrometheusCollector
    if name in ("instrument", "Instrumentation"):
        from . import otel

        return getattr(otel, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
