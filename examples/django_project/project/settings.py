"""Settings of the example project: a site-wide limit from rust_py_rate_limit's middleware.

``EXAMPLE_RATE`` and ``EXAMPLE_LOGIN_RATE`` (environment) change the limits, e.g. for tests.
"""

from __future__ import annotations

import os

DEBUG = True
# Development only: never deploy with this key or with DEBUG on.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS: list[str] = []
DATABASES: dict[str, dict[str, str]] = {}

MIDDLEWARE = [
    "django.middleware.common.CommonMiddleware",
    "rust_py_rate_limit.django.RateLimitMiddleware",
]

RUST_PY_RATE_LIMIT = {
    "RATE": os.environ.get("EXAMPLE_RATE", "100/minute"),
    "KEY_FUNC": "ip",
    "EXEMPT_PATHS": ["/health"],
}

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"
ASGI_APPLICATION = "project.asgi.application"
USE_TZ = True
