"""rust_py_rate_limit: rate limiting at the cost of a dict lookup, with a Rust core.

Every check runs in the compiled ``_core`` extension; this package adds the decorator and the
exception. Quick start::

    from rust_py_rate_limit import RateLimiter

    limiter = RateLimiter(limit=10, window_seconds=60)
    if limiter.allow("user:123"):
        ...  # admitted
"""

from ._core import (
    ALGORITHMS,
    Acquisition,
    ConcurrencyLimiter,
    Decision,
    FixedWindow,
    Gcra,
    Lease,
    ManualClock,
    RateLimiter,
    SlidingWindow,
    StorageError,
    TokenBucket,
    __version__,
)
from ._waiting import Throttle
from .decorators import KeySpec, rate_limit
from .exceptions import Overloaded, RateLimitExceeded
from .results import (
    CheckResult,
    ConcurrencyStats,
    ConcurrencyStatus,
    Histogram,
    Stats,
    StorageLatency,
)

__all__ = [
    "ALGORITHMS",
    "Acquisition",
    "CheckResult",
    "ConcurrencyLimiter",
    "ConcurrencyStats",
    "ConcurrencyStatus",
    "Decision",
    "FixedWindow",
    "Gcra",
    "Histogram",
    "KeySpec",
    "Lease",
    "ManualClock",
    "Overloaded",
    "RateLimitExceeded",
    "RateLimiter",
    "SlidingWindow",
    "Stats",
    "StorageError",
    "StorageLatency",
    "Throttle",
    "TokenBucket",
    "__version__",
    "rate_limit",
]
