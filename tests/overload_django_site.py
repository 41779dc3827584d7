"""A one-module Django site behind OverloadMiddleware, for the real-server tests
(tests/test_overload_servers.py): ``gunicorn overload_django_site:application`` (WSGI) or
``uvicorn overload_django_site:asgi_application`` (ASGI), run from tests/.

``/hold`` keeps its permit until ``/release`` is called; ``/status`` (exempt) reports the
permits held; ``/sleepy`` is an async view sleeping longer than ``OVERLOAD_TIMEOUT``.
"""

from __future__ import annotations

import asyncio
import os
import threading

import django
from django.conf import settings

from rust_py_rate_limit import ConcurrencyLimiter

LIMITER = ConcurrencyLimiter(int(os.environ.get("OVERLOAD_MAX_IN_FLIGHT", "2")))
TIMEOUT = os.environ.get("OVERLOAD_TIMEOUT")

settings.configure(
    DEBUG=False,
    SECRET_KEY="rust-py-rate-limit-tests-only",
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=["rust_py_rate_limit.django.OverloadMiddleware"],
    RUST_PY_RATE_LIMIT={
        "OVERLOAD": {
            "CONCURRENCY": f"{__name__}.LIMITER",
            "TIMEOUT": None if TIMEOUT is None else float(TIMEOUT),
            "EXEMPT_PATHS": ["/status", "/release"],
            "RETRY_AFTER": 2,
        }
    },
)
django.setup()

from django.core.asgi import get_asgi_application  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpRequest, HttpResponse, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402

HOLD = threading.Event()


def hold(request: HttpRequest) -> HttpResponse:
    return HttpResponse("held" if HOLD.wait(10) else "never released")


def release(request: HttpRequest) -> HttpResponse:
    HOLD.set()
    return HttpResponse("released")


def status(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"in_flight": LIMITER.in_flight})


async def sleepy(request: HttpRequest) -> HttpResponse:
    await asyncio.sleep(10)
    return HttpResponse("late")


urlpatterns = [
    path("hold", hold),
    path("release", release),
    path("status", status),
    path("sleepy", sleepy),
]

application = get_wsgi_application()
asgi_application = get_asgi_application()
