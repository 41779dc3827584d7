"""Django integration: a middleware for a site-wide limit and a decorator for per-view limits.

Install it with ``pip install 'rust-py-rate-limit[django]'``, then::

    MIDDLEWARE = [..., "rust_py_rate_limit.django.RateLimitMiddleware"]
    RUST_PY_RATE_LIMIT = {"LIMIT": 100, "WINDOW_SECONDS": 60, "KEY_FUNC": "ip"}

and, on a view::

    from rust_py_rate_limit.django import ratelimit

    @ratelimit("5/minute", key_func="ip")
    def login(request): ...

and, to keep the site fast under overload (first in ``MIDDLEWARE``)::

    MIDDLEWARE = ["rust_py_rate_limit.django.OverloadMiddleware", ...]
    RUST_PY_RATE_LIMIT = {"OVERLOAD": {"MAX_IN_FLIGHT": 8, "QUEUE": 16, "QUEUE_TIMEOUT": 0.5}}

Every decision goes through :class:`~rust_py_rate_limit.policy.RequestPolicy`; this package
only reads Django settings, requests and responses.
"""

from __future__ import annotations

from .config import SETTING, SETTING_NAMES, policy_from_settings
from .decorators import ratelimit
from .middleware import RateLimitMiddleware
from .overload import OverloadMiddleware
from .overload_config import overload_policy_from_settings
from .responses import OnBlocked

__all__ = [
    "SETTING",
    "SETTING_NAMES",
    "OnBlocked",
    "OverloadMiddleware",
    "RateLimitMiddleware",
    "overload_policy_from_settings",
    "policy_from_settings",
    "ratelimit",
]
