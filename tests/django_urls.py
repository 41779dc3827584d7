"""The tests' default URLconf: plain sync and async views, a health check, a static path."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path

#: How many times each view body ran (a refused request must not run it).
CALLS: dict[str, int] = {}


def plain(request: HttpRequest) -> HttpResponse:
    CALLS["plain"] = CALLS.get("plain", 0) + 1
    return JsonResponse({"ok": True, "method": request.method})


async def async_plain(request: HttpRequest) -> HttpResponse:
    CALLS["async_plain"] = CALLS.get("async_plain", 0) + 1
    return JsonResponse({"ok": True, "async": True})


def health(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


def whoami(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"user": request.user.get_username() or None})


urlpatterns = [
    path("plain", plain),
    path("async", async_plain),
    path("health", health),
    path("static/app.css", health),
    path("whoami", whoami),
]
