"""Django for the tests: settings configured once per process, shared views and hooks.

Importing this module configures Django (unless something already did) without touching other
test modules: an in-memory database, the auth and session middleware, then the rate-limit
middleware. Tests vary ``RUST_PY_RATE_LIMIT`` with ``override_settings`` and build their clients
(and so the middleware) inside it. Functions here are reached from settings by dotted path
(``"django_support.tenant_rate"``).
"""

from __future__ import annotations

from typing import Any

import django
from django.conf import settings

from rust_py_rate_limit import Decision, ManualClock, RateLimiter

MIDDLEWARE = "rust_py_rate_limit.django.RateLimitMiddleware"

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="rust-py-rate-limit-tests-only",
        ALLOWED_HOSTS=["testserver", "localhost", "127.0.0.1"],
        ROOT_URLCONF="django_urls",
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "django.contrib.sessions",
        ],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                # Shared cache: the async client's worker thread sees the same database.
                "NAME": "file:rust_py_rate_limit_django_tests?mode=memory&cache=shared",
            }
        },
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            MIDDLEWARE,
        ],
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        USE_TZ=True,
        RUST_PY_RATE_LIMIT={"LIMIT": 1000, "WINDOW_SECONDS": 60},
    )
    django.setup()

from django.http import HttpRequest, HttpResponse, JsonResponse  # noqa: E402

#: Reached as "django_support.CLOCK" / "django_support.LIMITER"; tests replace them.
CLOCK = ManualClock()
LIMITER = RateLimiter(limit=2, window_seconds=60, clock=CLOCK)
NOT_CALLABLE = 42


def tenant_rate(request: HttpRequest) -> str | None:
    """Per-tenant tiers from the X-Tenant header; None gives the default limit."""
    return {"premium": "5/minute", "free": "2/minute"}.get(request.headers.get("X-Tenant", ""))


def post_costs_three(request: HttpRequest) -> int:
    return 3 if request.method == "POST" else 1


def api_key(request: HttpRequest) -> str:
    return "key:" + request.headers.get("X-Api-Key", "none")


def teapot(request: HttpRequest, decision: Decision) -> HttpResponse:
    """An ON_BLOCKED hook: its own status and body, and its own Retry-After."""
    response = JsonResponse({"wait": decision.retry_after, "limit": decision.limit}, status=418)
    response["Retry-After"] = "1234"
    return response


def plain_text(request: HttpRequest, decision: Decision) -> HttpResponse:
    return HttpResponse("slow down", status=429, content_type="text/plain")


def not_a_response(request: HttpRequest, decision: Decision) -> Any:
    return {"detail": "oops"}
