"""A one-module Django site with ``10/minute`` per client on the storage ``RATE_LIMIT_STORAGE``
names, for tests/test_shm_servers.py: ``gunicorn -w 4 shm_django_site:application``, run from
tests/. ``/pid`` is exempt: it shows which workers are up."""

from __future__ import annotations

import json
import os

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="rust-py-rate-limit-tests-only",
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=["rust_py_rate_limit.django.RateLimitMiddleware"],
    RUST_PY_RATE_LIMIT={
        "RATE": "10/minute",
        "EXEMPT_PATHS": ["/pid"],
        # STORAGE, ON_FULL...: a JSON object of further settings
        **json.loads(os.environ.get("RATE_LIMIT_SETTINGS", "{}")),
    },
)
django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402
from worker_pid import WsgiPid  # noqa: E402


def index(request: HttpRequest) -> HttpResponse:
    return HttpResponse("hello")


def pid(request: HttpRequest) -> HttpResponse:
    return HttpResponse("up")


urlpatterns = [path("", index), path("pid", pid)]

application = WsgiPid(get_wsgi_application())
