"""Two views: one under the site-wide limit only, one with a stricter limit of its own."""

from __future__ import annotations

import os

from django.http import HttpRequest, HttpResponse, JsonResponse

from rust_py_rate_limit.django import ratelimit


def hello(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"message": "hello"})


@ratelimit(os.environ.get("EXAMPLE_LOGIN_RATE", "5/minute"), key_func="ip")
def login(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"message": "pretend you logged in"})


def health(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")
