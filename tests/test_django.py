"""The Django integration: RateLimitMiddleware (sync and async) and the @ratelimit decorator.

Django is configured once by ``django_support`` (an in-memory database, sessions and auth, then
the middleware); each test sets ``RUST_PY_RATE_LIMIT`` with ``override_settings`` and builds its
clients inside it, so every test gets a fresh middleware and limiter. Time is a ManualClock.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import django
import django_support  # configures Django before anything below touches settings
import django_urls
import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.test import AsyncClient, Client, RequestFactory, override_settings
from django.urls import URLPattern, path
from django.utils.decorators import method_decorator
from django.views import View

from rust_py_rate_limit import Decision, ManualClock, RateLimiter
from rust_py_rate_limit.django import RateLimitMiddleware, ratelimit
from rust_py_rate_limit.policy import RequestPolicy

SETTING = "RUST_PY_RATE_LIMIT"

# What Django 4.2 (the oldest supported; scripts/test runs these tests against it) cannot do.
NEEDS_ASYNC_METHOD_DECORATOR = pytest.mark.skipif(
    django.VERSION < (5, 0), reason="method_decorator() wraps async methods from Django 5.0 on"
)


def limit(**config: Any) -> override_settings:
    return override_settings(RUST_PY_RATE_LIMIT=config)


class Urls:
    """A URLconf for one test: the shared views plus the test's own (fresh limits each test)."""

    def __init__(self, *patterns: URLPattern) -> None:
        self.urlpatterns = [*django_urls.urlpatterns, *patterns]


def urls(*patterns: URLPattern) -> override_settings:
    return override_settings(ROOT_URLCONF=Urls(*patterns))


def rl(response: HttpResponseBase) -> dict[str, str]:
    """The rate-limit headers of a response."""
    names = ("X-RateLimit-", "RateLimit", "Retry-After")
    return {k: v for k, v in response.headers.items() if k.startswith(names)}


def ok(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"ok": True})


# --- the middleware: headers, refusal --------------------------------------------------------


def test_headers_on_every_admitted_response_count_down(clock: ManualClock) -> None:
    with limit(LIMIT=3, WINDOW_SECONDS=60, CLOCK=clock):
        client = Client()
        seen = [rl(client.get("/plain")) for _ in range(3)]
    assert seen == [
        {"X-RateLimit-Limit": "3", "X-RateLimit-Remaining": str(n), "X-RateLimit-Reset": "60"}
        for n in (2, 1, 0)
    ]


@pytest.mark.parametrize(
    ("style", "expected"),
    [
        (
            "ietf",
            {"RateLimit-Policy": '"api";q=3;w=60', "RateLimit": '"api";r=2;t=60'},
        ),
        (
            "both",
            {
                "X-RateLimit-Limit": "3",
                "X-RateLimit-Remaining": "2",
                "X-RateLimit-Reset": "60",
                "RateLimit-Policy": '"api";q=3;w=60',
                "RateLimit": '"api";r=2;t=60',
            },
        ),
        (None, {}),
    ],
)
def test_header_styles(clock: ManualClock, style: str | None, expected: dict[str, str]) -> None:
    with limit(RATE="3/minute", HEADERS=style, NAME="api", CLOCK=clock):
        response = Client().get("/plain")
    assert response.status_code == 200
    assert rl(response) == expected


def test_refusal_is_429_json_with_retry_after_and_the_view_does_not_run(
    clock: ManualClock,
) -> None:
    with limit(LIMIT=2, WINDOW_SECONDS=60, CLOCK=clock):
        client = Client()
        assert [client.get("/plain").status_code for _ in range(2)] == [200, 200]
        runs = django_urls.CALLS["plain"]
        clock.advance(15)
        refused = client.get("/plain")
    assert refused.status_code == 429
    assert refused["Content-Type"] == "application/json"
    assert json.loads(refused.content) == {"detail": "Too many requests"}
    assert rl(refused) == {
        "X-RateLimit-Limit": "2",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "45",
        "Retry-After": "45",
    }
    assert django_urls.CALLS["plain"] == runs


def test_retry_after_is_sent_even_without_rate_limit_headers(clock: ManualClock) -> None:
    with limit(RATE="1/minute", HEADERS=None, STATUS_CODE=503, BODY="busy", CLOCK=clock):
        client = Client()
        assert rl(client.get("/plain")) == {}
        refused = client.get("/plain")
    assert refused.status_code == 503
    assert refused.content == b"busy"
    assert refused["Content-Type"] == "text/plain; charset=utf-8"
    assert rl(refused) == {"Retry-After": "60"}


def test_on_blocked_builds_the_refusal_and_keeps_its_own_headers(clock: ManualClock) -> None:
    with limit(RATE="1/minute", ON_BLOCKED="django_support.teapot", CLOCK=clock):
        client = Client()
        client.get("/plain")
        refused = client.get("/plain")
    assert refused.status_code == 418
    assert json.loads(refused.content) == {"wait": 60.0, "limit": 1}
    # the hook's Retry-After wins; the rate-limit headers are added
    assert rl(refused) == {
        "Retry-After": "1234",
        "X-RateLimit-Limit": "1",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "60",
    }


def test_on_blocked_gets_retry_after_added(clock: ManualClock) -> None:
    with limit(RATE="1/minute", ON_BLOCKED=django_support.plain_text, CLOCK=clock):
        client = Client()
        client.get("/plain")
        refused = client.get("/plain")
    assert (refused.status_code, refused.content) == (429, b"slow down")
    assert refused["Retry-After"] == "60"


def test_on_blocked_must_return_a_response(clock: ManualClock) -> None:
    with limit(RATE="1/minute", ON_BLOCKED="django_support.not_a_response", CLOCK=clock):
        client = Client()
        client.get("/plain")
        with pytest.raises(TypeError, match="`on_blocked` must return an HttpResponse, not dict"):
            client.get("/plain")


def test_a_limiter_with_a_manual_clock_admits_again_when_time_moves() -> None:
    clock = ManualClock()
    limiter = RateLimiter(limit=2, window_seconds=10, clock=clock)
    with (
        pytest.MonkeyPatch.context() as patch,
        limit(LIMITER="django_support.LIMITER", KEY_FUNC="ip"),
    ):
        patch.setattr(django_support, "LIMITER", limiter)
        client = Client()
        assert [client.get("/plain").status_code for _ in range(3)] == [200, 200, 429]
        clock.advance(9.5)
        assert client.get("/plain").status_code == 429
        clock.advance(0.5)
        again = client.get("/plain")
    assert again.status_code == 200
    assert again["X-RateLimit-Remaining"] == "1"
    assert limiter.stats()["blocked"] == 2


def test_the_limiter_can_be_given_as_an_object(clock: ManualClock) -> None:
    limiter = RateLimiter.from_rate("1/minute", clock=clock)
    with limit(LIMITER=limiter):
        client = Client()
        assert [client.get("/plain").status_code for _ in range(2)] == [200, 429]


# --- exemptions and cost ---------------------------------------------------------------------


def test_exempt_paths_and_methods_are_not_counted_and_get_no_headers(clock: ManualClock) -> None:
    with limit(
        RATE="2/minute",
        EXEMPT_PATHS=["/health", "/static/*"],
        EXEMPT_METHODS=["options"],
        CLOCK=clock,
    ):
        client = Client()
        for _ in range(5):
            for response in (
                client.get("/health"),
                client.get("/static/app.css"),
                client.options("/plain"),
            ):
                assert response.status_code == 200
                assert rl(response) == {}
        statuses = [client.get("/plain").status_code for _ in range(3)]
        assert client.get("/healthz").status_code == 429  # an exact path, not a prefix
    assert statuses == [200, 200, 429]


def test_a_fixed_cost(clock: ManualClock) -> None:
    with limit(LIMIT=5, WINDOW_SECONDS=60, COST=2, CLOCK=clock):
        client = Client()
        remaining = [client.get("/plain")["X-RateLimit-Remaining"] for _ in range(2)]
        refused = client.get("/plain")
    assert remaining == ["3", "1"]
    assert refused.status_code == 429
    assert refused["X-RateLimit-Remaining"] == "1"


def test_a_cost_function_by_dotted_path(clock: ManualClock) -> None:
    with limit(LIMIT=5, WINDOW_SECONDS=60, COST="django_support.post_costs_three", CLOCK=clock):
        client = Client()
        assert client.post("/plain")["X-RateLimit-Remaining"] == "2"
        assert client.get("/plain")["X-RateLimit-Remaining"] == "1"
        assert client.post("/plain").status_code == 429
        assert client.get("/plain")["X-RateLimit-Remaining"] == "0"


# --- keys: dynamic limits, proxies, users ----------------------------------------------------


def test_dynamic_limit_per_tenant(clock: ManualClock) -> None:
    with limit(
        LIMIT=3,
        WINDOW_SECONDS=60,
        KEY_FUNC="header:X-Tenant",
        DYNAMIC_LIMIT="django_support.tenant_rate",
        CLOCK=clock,
    ):
        client = Client()

        def statuses(tenant: str, n: int) -> list[tuple[int, str]]:
            out = []
            for _ in range(n):
                r = client.get("/plain", headers={"X-Tenant": tenant})
                out.append((r.status_code, r["X-RateLimit-Limit"]))
            return out

        premium = statuses("premium", 6)
        free = statuses("free", 3)
        other = statuses("other", 4)
        clock.advance(60)
        assert statuses("free", 1) == [(200, "2")]
    assert premium == [(200, "5")] * 5 + [(429, "5")]
    assert free == [(200, "2")] * 2 + [(429, "2")]
    assert other == [(200, "3")] * 3 + [(429, "3")]


def test_a_key_function_by_dotted_path(clock: ManualClock) -> None:
    with limit(RATE="1/minute", KEY_FUNC="django_support.api_key", CLOCK=clock):
        client = Client()
        a = [client.get("/plain", headers={"X-Api-Key": "a"}).status_code for _ in range(2)]
        b = client.get("/plain", headers={"X-Api-Key": "b"}).status_code
    assert (a, b) == ([200, 429], 200)


def test_forwarded_for_from_an_untrusted_peer_is_ignored(clock: ManualClock) -> None:
    with limit(RATE="1/minute", TRUSTED_PROXIES=["10.0.0.0/8"], CLOCK=clock):
        client = Client(REMOTE_ADDR="203.0.113.9")
        first = client.get("/plain", headers={"X-Forwarded-For": "198.51.100.1"})
        spoofed = client.get("/plain", headers={"X-Forwarded-For": "198.51.100.2"})
    assert (first.status_code, spoofed.status_code) == (200, 429)


def test_forwarded_for_from_a_trusted_proxy_names_the_client(clock: ManualClock) -> None:
    with limit(RATE="1/minute", TRUSTED_PROXIES=["10.0.0.0/8"], CLOCK=clock):
        client = Client(REMOTE_ADDR="10.1.2.3")

        def get(forwarded: str) -> int:
            return client.get("/plain", headers={"X-Forwarded-For": forwarded}).status_code

        assert get("198.51.100.1") == 200
        assert get("198.51.100.2") == 200  # another client behind the same proxy
        assert get("198.51.100.1") == 429
        # the client prepends a fake hop; the proxy appended the real one, read right to left
        assert get("192.0.2.66, 198.51.100.2") == 429
        assert get("192.0.2.66, 198.51.100.3") == 200


def test_without_trusted_proxies_the_header_is_never_read(clock: ManualClock) -> None:
    with limit(RATE="1/minute", CLOCK=clock):
        client = Client(REMOTE_ADDR="10.1.2.3")
        statuses = [
            client.get("/plain", headers={"X-Forwarded-For": f"198.51.100.{n}"}).status_code
            for n in range(2)
        ]
    assert statuses == [200, 429]


class FakeUser:
    is_authenticated = True

    def __init__(self, pk: int) -> None:
        self.pk = pk


def test_user_key_with_request_factory_users(clock: ManualClock) -> None:
    factory = RequestFactory()

    def request(user: object) -> HttpRequest:
        req = factory.get("/plain")
        req.user = user  # type: ignore[assignment]
        return req

    with limit(RATE="1/minute", KEY_FUNC="user", CLOCK=clock):
        middleware = RateLimitMiddleware(ok)
        assert middleware(request(FakeUser(1))).status_code == 200
        assert middleware(request(FakeUser(2))).status_code == 200
        assert middleware(request(FakeUser(1))).status_code == 429
        # anonymous users fall back to the address (RequestFactory's 127.0.0.1)
        assert middleware(request(AnonymousUser())).status_code == 200
        assert middleware(request(AnonymousUser())).status_code == 429


@pytest.fixture(scope="module")
def users() -> Iterator[tuple[User, User]]:
    call_command("migrate", verbosity=0, interactive=False)
    ada = User.objects.create_user("ada", password="pw")
    bob = User.objects.create_user("bob", password="pw")
    yield ada, bob
    User.objects.all().delete()


def test_user_key_with_django_auth_sessions(clock: ManualClock, users: tuple[User, User]) -> None:
    ada, bob = users
    with limit(RATE="2/minute", KEY_FUNC="user", CLOCK=clock):
        as_ada, as_bob, anonymous = Client(), Client(), Client()
        as_ada.force_login(ada)
        as_bob.force_login(bob)
        ada_statuses = [as_ada.get("/whoami").status_code for _ in range(3)]
        assert json.loads(as_bob.get("/whoami").content) == {"user": "bob"}
        assert anonymous.get("/whoami").status_code == 200  # keyed by 127.0.0.1
    assert ada_statuses == [200, 200, 429]


def test_user_key_in_async_code_loads_the_user_without_blocking(
    clock: ManualClock, users: tuple[User, User]
) -> None:
    ada, bob = users
    with limit(RATE="1/minute", KEY_FUNC="user", CLOCK=clock):
        as_ada, as_bob = AsyncClient(), AsyncClient()
        as_ada.force_login(ada)
        as_bob.force_login(bob)

        async def run() -> list[int]:
            # A lazy request.user evaluated here would raise SynchronousOnlyOperation.
            responses = [
                await as_ada.get("/async"),
                await as_bob.get("/async"),
                await as_ada.get("/async"),
            ]
            return [r.status_code for r in responses]

        assert asyncio.run(run()) == [200, 200, 429]


# --- the async middleware path ---------------------------------------------------------------


def test_the_middleware_is_a_coroutine_function_only_with_an_async_handler() -> None:
    from asgiref.sync import iscoroutinefunction

    async def async_get_response(request: HttpRequest) -> HttpResponse:
        return HttpResponse()

    with limit(RATE="1/minute"):
        assert RateLimitMiddleware.sync_capable and RateLimitMiddleware.async_capable
        assert not iscoroutinefunction(RateLimitMiddleware(ok))
        assert iscoroutinefunction(RateLimitMiddleware(async_get_response))


def test_async_middleware_awaits_adecide_on_the_event_loop_thread(
    clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[int] = []
    inside_adecide = False
    original_adecide, original_decide = RequestPolicy.adecide, RequestPolicy.decide

    async def adecide(self: RequestPolicy, request: Any) -> Any:
        nonlocal inside_adecide
        threads.append(threading.get_ident())
        inside_adecide = True
        try:
            return await original_adecide(self, request)
        finally:
            inside_adecide = False

    def decide(self: RequestPolicy, request: Any) -> Any:
        if not inside_adecide:
            pytest.fail("the async path called decide() instead of awaiting adecide()")
        return original_decide(self, request)

    monkeypatch.setattr(RequestPolicy, "adecide", adecide)
    monkeypatch.setattr(RequestPolicy, "decide", decide)
    with limit(LIMIT=2, WINDOW_SECONDS=60, CLOCK=clock):
        client = AsyncClient()

        async def run() -> tuple[int, list[HttpResponseBase]]:
            responses = [await client.get("/async") for _ in range(3)]
            return threading.get_ident(), responses

        loop_thread, responses = asyncio.run(run())
    assert threads == [loop_thread] * 3  # no hop to a worker thread
    assert [r.status_code for r in responses] == [200, 200, 429]


def test_async_client_gets_headers_and_refusals(clock: ManualClock) -> None:
    with limit(LIMIT=2, WINDOW_SECONDS=60, HEADERS="both", CLOCK=clock):
        client = AsyncClient()

        async def run() -> list[HttpResponseBase]:
            return [
                await client.get("/async"),
                await client.get("/plain"),
                await client.get("/async"),
                await client.get("/health"),
            ]

        first, second, refused, other = asyncio.run(run())
    assert first["X-RateLimit-Remaining"] == "1"
    assert first["RateLimit"] == '"default";r=1;t=60'
    assert second["X-RateLimit-Remaining"] == "0"
    assert refused.status_code == 429
    assert refused["Retry-After"] == "60"
    assert json.loads(refused.content) == {"detail": "Too many requests"}
    assert other.status_code == 429


def test_async_on_blocked_is_awaited(clock: ManualClock) -> None:
    async def on_blocked(request: HttpRequest, decision: Decision) -> HttpResponse:
        await asyncio.sleep(0)
        return HttpResponse("async refusal", status=429)

    with limit(RATE="1/minute", ON_BLOCKED=on_blocked, CLOCK=clock):
        client = AsyncClient()

        async def run() -> HttpResponseBase:
            await client.get("/async")
            return await client.get("/async")

        refused = asyncio.run(run())
    assert refused.content == b"async refusal"
    assert refused["Retry-After"] == "60"


def test_an_async_on_blocked_in_sync_code_is_an_error(clock: ManualClock) -> None:
    async def on_blocked(request: HttpRequest, decision: Decision) -> HttpResponse:
        return HttpResponse(status=429)

    with limit(RATE="1/minute", ON_BLOCKED=on_blocked, CLOCK=clock):
        client = Client()
        client.get("/plain")
        with pytest.raises(TypeError, match="`on_blocked` returned an awaitable"):
            client.get("/plain")


# --- the decorator ---------------------------------------------------------------------------


def test_a_view_limit_replaces_the_global_one_on_its_view(clock: ManualClock) -> None:
    @ratelimit("2/minute", key_func="ip", clock=clock)
    def login(request: HttpRequest) -> HttpResponse:
        return HttpResponse("welcome")

    with urls(path("login", login)), limit(LIMIT=100, WINDOW_SECONDS=60, CLOCK=clock):
        client = Client()
        logins = [client.get("/login") for _ in range(3)]
        plain = client.get("/plain")
        missing = client.get("/no-such-page")
        after = client.get("/plain")
    assert [r.status_code for r in logins] == [200, 200, 429]
    # the view's headers replace the middleware's on that view
    assert [r["X-RateLimit-Limit"] for r in logins] == ["2", "2", "2"]
    assert [r["X-RateLimit-Remaining"] for r in logins] == ["1", "0", "0"]
    assert logins[2]["Retry-After"] == "60"
    # the global limit counted none of the view's requests; a 404 is counted
    assert plain.status_code == 200
    assert rl(plain)["X-RateLimit-Limit"] == "100"
    assert rl(plain)["X-RateLimit-Remaining"] == "99"
    assert missing.status_code == 404
    assert rl(missing)["X-RateLimit-Remaining"] == "98"
    assert rl(after)["X-RateLimit-Remaining"] == "97"


def test_override_defaults_false_counts_a_view_against_both(clock: ManualClock) -> None:
    @ratelimit("5/minute", clock=clock, override_defaults=False)
    def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse()

    with urls(path("view", view)), limit(RATE="1/minute", CLOCK=clock):
        client = Client()
        first, second = client.get("/view"), client.get("/view")
    assert (first.status_code, first["X-RateLimit-Limit"]) == (200, "5")
    assert (second.status_code, second["X-RateLimit-Limit"]) == (429, "1")


def test_decorator_options(clock: ManualClock) -> None:
    @ratelimit(
        limit=4,
        window_seconds=60,
        key_func="header:X-Api-Key",
        cost=2,
        headers="ietf",
        name="uploads",
        status_code=503,
        body={"error": "later"},
        exempt_methods=["HEAD"],
        clock=clock,
    )
    def upload(request: HttpRequest) -> HttpResponse:
        return HttpResponse("stored")

    with urls(path("upload", upload)), limit(RATE="100/minute", CLOCK=clock):
        client = Client()
        first = client.post("/upload", headers={"X-Api-Key": "k1"})
        head = client.head("/upload", headers={"X-Api-Key": "k1"})
        second = client.post("/upload", headers={"X-Api-Key": "k1"})
        refused = client.post("/upload", headers={"X-Api-Key": "k1"})
        other = client.post("/upload", headers={"X-Api-Key": "k2"})
    assert first["RateLimit"] == '"uploads";r=2;t=60'
    assert first["RateLimit-Policy"] == '"uploads";q=4;w=60'
    assert "X-RateLimit-Limit" not in first  # the view's headers, not the middleware's
    assert head.status_code == 200 and "RateLimit" not in head
    assert second["RateLimit"] == '"uploads";r=0;t=60'
    assert refused.status_code == 503
    assert json.loads(refused.content) == {"error": "later"}
    assert refused["Retry-After"] == "60"
    assert other.status_code == 200


def test_decorator_on_blocked_and_dynamic_limit(clock: ManualClock) -> None:
    def on_blocked(request: HttpRequest, decision: Decision) -> HttpResponse:
        return HttpResponse(f"limit {decision.limit}", status=429)

    @ratelimit(
        "3/minute",
        key_func="header:X-Tenant",
        dynamic_limit=django_support.tenant_rate,
        on_blocked=on_blocked,
        clock=clock,
    )
    def report(request: HttpRequest) -> HttpResponse:
        return HttpResponse("report")

    with urls(path("report", report)), limit(RATE="100/minute", CLOCK=clock):
        client = Client()
        free = [client.get("/report", headers={"X-Tenant": "free"}) for _ in range(3)]
    assert [r.status_code for r in free] == [200, 200, 429]
    assert free[2].content == b"limit 2"
    assert free[2]["Retry-After"] == "60"


def test_views_sharing_a_decorator_or_a_limiter_count_apart_unless_scoped(
    clock: ManualClock,
) -> None:
    shared = RateLimiter.from_rate("1/minute", clock=clock)
    one_decorator = ratelimit(limiter=shared)

    @one_decorator
    def first(request: HttpRequest) -> HttpResponse:
        return HttpResponse()

    @one_decorator
    def second(request: HttpRequest) -> HttpResponse:
        return HttpResponse()

    @ratelimit(limiter=shared, scope="uploads")
    def third(request: HttpRequest) -> HttpResponse:
        return HttpResponse()

    @ratelimit(limiter=shared, scope="uploads")
    def fourth(request: HttpRequest) -> HttpResponse:
        return HttpResponse()

    patterns = [path(f.__name__, f) for f in (first, second, third, fourth)]
    with urls(*patterns), limit(RATE="100/minute", CLOCK=clock):
        client = Client()
        statuses = {
            name: [client.get(f"/{name}").status_code for _ in range(2)]
            for name in ("first", "second", "third")
        }
        statuses["fourth"] = [client.get("/fourth").status_code]
    assert statuses == {
        "first": [200, 429],
        "second": [200, 429],
        "third": [200, 429],
        "fourth": [429],  # shares "uploads" with third
    }


def test_class_based_view_through_method_decorator(clock: ManualClock) -> None:
    @method_decorator(ratelimit("2/minute", clock=clock), name="get")
    class Items(View):
        def get(self, request: HttpRequest) -> HttpResponse:
            return HttpResponse("items")

        def post(self, request: HttpRequest) -> HttpResponse:
            return HttpResponse("created")

    with urls(path("items", Items.as_view())), limit(RATE="100/minute", CLOCK=clock):
        client = Client()
        gets = [client.get("/items") for _ in range(3)]
        posts = [client.post("/items").status_code for _ in range(3)]
    assert [r.status_code for r in gets] == [200, 200, 429]
    assert [r["X-RateLimit-Limit"] for r in gets] == ["2", "2", "2"]
    assert posts == [200, 200, 200]


@NEEDS_ASYNC_METHOD_DECORATOR
def test_async_class_based_view_through_method_decorator(clock: ManualClock) -> None:
    class Items(View):
        @method_decorator(ratelimit("1/minute", clock=clock))
        async def get(self, request: HttpRequest) -> HttpResponse:
            return HttpResponse("items")

    with urls(path("items", Items.as_view())), limit(RATE="100/minute", CLOCK=clock):
        client = AsyncClient()

        async def run() -> list[int]:
            return [(await client.get("/items")).status_code for _ in range(2)]

        assert asyncio.run(run()) == [200, 429]


def test_async_view_gets_an_async_wrapper(clock: ManualClock) -> None:
    from asgiref.sync import iscoroutinefunction

    @ratelimit("2/minute", clock=clock)
    async def feed(request: HttpRequest) -> HttpResponse:
        await asyncio.sleep(0)
        return HttpResponse("feed")

    assert iscoroutinefunction(feed)
    assert feed.__name__ == "feed"
    with urls(path("feed", feed)), limit(RATE="100/minute", CLOCK=clock):
        client, sync_client = AsyncClient(), Client()

        async def run() -> list[HttpResponseBase]:
            return [await client.get("/feed") for _ in range(2)]

        responses = asyncio.run(run())
        refused = sync_client.get("/feed")  # the same view under the sync handler
    assert [r["X-RateLimit-Remaining"] for r in responses] == ["1", "0"]
    assert refused.status_code == 429
    assert refused["Retry-After"] == "60"


def test_async_view_keyed_by_user(clock: ManualClock, users: tuple[User, User]) -> None:
    ada, bob = users

    @ratelimit("1/minute", key_func="user", clock=clock)
    async def inbox(request: HttpRequest) -> HttpResponse:
        return HttpResponse("inbox")

    with urls(path("inbox", inbox)), limit(RATE="100/minute", CLOCK=clock):
        as_ada, as_bob = AsyncClient(), AsyncClient()
        as_ada.force_login(ada)
        as_bob.force_login(bob)

        async def run() -> list[int]:
            clients = (as_ada, as_bob, as_ada)
            return [(await c.get("/inbox")).status_code for c in clients]

        assert asyncio.run(run()) == [200, 200, 429]


def test_decorated_view_without_the_middleware(clock: ManualClock) -> None:
    @ratelimit("1/minute", clock=clock)
    def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse()

    factory = RequestFactory()
    assert view(factory.get("/")).status_code == 200
    refused = view(factory.get("/"))
    assert refused.status_code == 429
    assert refused["Retry-After"] == "60"


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((), {}, TypeError, "a rate limit needs"),
        (("five per minute",), {}, ValueError, "invalid rate string"),
        (("5/minute",), {"key_func": 5}, TypeError, "a key must be"),
        (("5/minute",), {"key_func": "usr"}, ValueError, "a key must be"),
        (("5/minute",), {"on_blocked": lambda d: d}, TypeError, r"on_blocked\(request, decision\)"),
        (("5/minute",), {"methods": ["GET", 5]}, TypeError, "`methods` entries must be str"),
        (("5/minute",), {"reset_format": "unix"}, ValueError, "`reset_format`"),
        (("5/minute",), {"override_defaults": "yes"}, TypeError, "`override_defaults`"),
        (("5/minute",), {"timeout": 1}, ValueError, "`timeout` only applies"),
        (("5/minute",), {"cost": 0}, ValueError, "`cost` must be >= 1"),
        (("5/minute",), {"headers": "x"}, ValueError, "`headers` must be one of"),
        (("5/minute",), {"status_code": 200}, ValueError, "`status_code`"),
        (("5/minute",), {"on_blocked": "nope"}, TypeError, "`on_blocked` must be callable"),
        (("5/minute",), {"scope": 3}, TypeError, "`scope` must be a str"),
        (("5/minute",), {"trusted_proxies": ["nope"]}, ValueError, "trusted_proxies"),
        (("5/minute",), {"limit": 5}, TypeError, "either `rate`"),
    ],
)
def test_decorator_bad_arguments(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        ratelimit(*args, **kwargs)


# --- settings --------------------------------------------------------------------------------


BAD_SETTINGS: list[tuple[str, dict[str, Any]]] = [
    ("LIMT", {"LIMT": 100, "WINDOW_SECONDS": 60}),
    ("LIMIT", {"LIMIT": "100", "WINDOW_SECONDS": 60}),
    ("LIMIT", {"LIMIT": 0, "WINDOW_SECONDS": 60}),
    ("LIMIT", {"LIMIT": True, "WINDOW_SECONDS": 60}),
    ("LIMIT", {"LIMIT": 100}),
    ("WINDOW_SECONDS", {"LIMIT": 100, "WINDOW_SECONDS": 0}),
    ("WINDOW_SECONDS", {"LIMIT": 100, "WINDOW_SECONDS": "60"}),
    ("WINDOW_SECONDS", {"WINDOW_SECONDS": 60}),
    ("RATE", {"RATE": "lots"}),
    ("RATE", {"RATE": 100}),
    ("RATE", {"RATE": "1/minute", "LIMIT": 1, "WINDOW_SECONDS": 60}),
    ("RATE", {"RATE": "1/minute", "LIMITER": "django_support.LIMITER"}),
    ("ALGORITHM", {"RATE": "1/minute", "ALGORITHM": "magic"}),
    ("BURST", {"RATE": "1/minute", "ALGORITHM": "gcra", "BURST": 0}),
    ("BURST", {"RATE": "1/minute", "BURST": 5}),
    ("MAX_KEYS", {"RATE": "1/minute", "MAX_KEYS": 0}),
    ("MAX_KEYS", {"RATE": "1/minute", "MAX_KEYS": "many"}),
    ("CLEANUP_INTERVAL", {"RATE": "1/minute", "CLEANUP_INTERVAL": -1}),
    ("CLOCK", {"RATE": "1/minute", "CLOCK": 5}),
    ("CLOCK", {"RATE": "1/minute", "CLOCK": "django_support.NOT_CALLABLE"}),
    ("KEY_FUNC", {"RATE": "1/minute", "KEY_FUNC": "usr"}),
    ("KEY_FUNC", {"RATE": "1/minute", "KEY_FUNC": "header:"}),
    ("KEY_FUNC", {"RATE": "1/minute", "KEY_FUNC": 5}),
    ("KEY_FUNC", {"RATE": "1/minute", "KEY_FUNC": None}),
    ("KEY_FUNC", {"RATE": "1/minute", "KEY_FUNC": "django_support.nowhere"}),
    ("KEY_FUNC", {"RATE": "1/minute", "KEY_FUNC": "no_such_module.key"}),
    ("KEY_FUNC", {"RATE": "1/minute", "KEY_FUNC": "django_support.NOT_CALLABLE"}),
    ("TRUSTED_PROXIES", {"RATE": "1/minute", "TRUSTED_PROXIES": ["proxy.local"]}),
    ("TRUSTED_PROXIES", {"RATE": "1/minute", "TRUSTED_PROXIES": 10}),
    ("COST", {"RATE": "1/minute", "COST": 0}),
    ("COST", {"RATE": "1/minute", "COST": 1.5}),
    ("COST", {"RATE": "1/minute", "COST": True}),
    ("COST", {"RATE": "1/minute", "COST": "2"}),
    ("COST", {"RATE": "1/minute", "COST": "django_support.missing"}),
    ("DYNAMIC_LIMIT", {"RATE": "1/minute", "DYNAMIC_LIMIT": "1/second"}),
    ("DYNAMIC_LIMIT", {"RATE": "1/minute", "DYNAMIC_LIMIT": 5}),
    ("DYNAMIC_LIMIT", {"RATE": "1/minute", "DYNAMIC_LIMIT": "django_support.NOT_CALLABLE"}),
    ("LIMITER", {"LIMITER": "django_support.tenant_rate"}),
    ("LIMITER", {"LIMITER": "django_support.NO_LIMITER"}),
    ("LIMITER", {"LIMITER": 5}),
    ("EXEMPT_PATHS", {"RATE": "1/minute", "EXEMPT_PATHS": 5}),
    ("EXEMPT_PATHS", {"RATE": "1/minute", "EXEMPT_PATHS": ["/ok", 5]}),
    ("EXEMPT_METHODS", {"RATE": "1/minute", "EXEMPT_METHODS": [b"GET"]}),
    ("HEADERS", {"RATE": "1/minute", "HEADERS": "draft"}),
    ("NAME", {"RATE": "1/minute", "NAME": ""}),
    ("NAME", {"RATE": "1/minute", "NAME": 5}),
    ("STATUS_CODE", {"RATE": "1/minute", "STATUS_CODE": 200}),
    ("STATUS_CODE", {"RATE": "1/minute", "STATUS_CODE": "429"}),
    ("BODY", {"RATE": "1/minute", "BODY": 5}),
    ("ON_BLOCKED", {"RATE": "1/minute", "ON_BLOCKED": 5}),
    ("ON_BLOCKED", {"RATE": "1/minute", "ON_BLOCKED": "django_support.no_hook"}),
    ("ON_BLOCKED", {"RATE": "1/minute", "ON_BLOCKED": lambda decision: None}),
    ("METHODS", {"RATE": "1/minute", "METHODS": [5]}),
    ("METHODS", {"RATE": "1/minute", "METHODS": ["G T"]}),
    ("RESET_FORMAT", {"RATE": "1/minute", "RESET_FORMAT": "unix"}),
    ("STORAGE", {"RATE": "1/minute", "STORAGE": "memcached://127.0.0.1"}),
    ("KEY_PREFIX", {"RATE": "1/minute", "STORAGE": "redis://127.0.0.1", "KEY_PREFIX": 5}),
    ("TIMEOUT", {"RATE": "1/minute", "STORAGE": "redis://127.0.0.1", "TIMEOUT": -1}),
    ("TIMEOUT", {"RATE": "1/minute", "TIMEOUT": 1}),
    ("ON_STORAGE_ERROR", {"RATE": "1/minute", "STORAGE": "redis://x", "ON_STORAGE_ERROR": "no"}),
    ("FALLBACK", {"RATE": "1/minute", "STORAGE": "redis://127.0.0.1", "FALLBACK": "disk"}),
    ("LOCAL_DENY_CACHE", {"RATE": "1/minute", "STORAGE": "redis://x", "LOCAL_DENY_CACHE": 1}),
    ("ON_FULL", {"RATE": "1/minute", "ON_FULL": "drop"}),
    ("KEY", {"RATE": "1/minute", "KEY": "ip", "KEY_FUNC": "ip"}),
    ("OVERLOAD", {"RATE": "1/minute", "OVERLOAD": None}),  # its contents: test_django_overload
]


@pytest.mark.parametrize(("name", "config"), BAD_SETTINGS, ids=[str(c) for _, c in BAD_SETTINGS])
def test_bad_setting_is_improperly_configured_naming_it(name: str, config: dict[str, Any]) -> None:
    with limit(**config), pytest.raises(ImproperlyConfigured) as caught:
        RateLimitMiddleware(ok)
    assert f"{SETTING}[{name!r}]" in str(caught.value)


def test_every_setting_name_has_a_bad_value_tested() -> None:
    from rust_py_rate_limit.django import SETTING_NAMES

    assert {name for name, _ in BAD_SETTINGS} >= SETTING_NAMES


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("100/minute", "must be a dict, not str"),
        ({}, "needs 'LIMIT' and 'WINDOW_SECONDS', 'RATE'"),
    ],
)
def test_bad_setting_as_a_whole(value: object, match: str) -> None:
    with override_settings(RUST_PY_RATE_LIMIT=value), pytest.raises(ImproperlyConfigured) as e:
        RateLimitMiddleware(ok)
    assert match in str(e.value)
    assert SETTING in str(e.value)


def test_a_missing_setting_is_improperly_configured() -> None:
    from django.conf import settings

    with override_settings():
        del settings.RUST_PY_RATE_LIMIT
        with pytest.raises(ImproperlyConfigured, match=f"{SETTING} is not set"):
            RateLimitMiddleware(ok)


def test_a_bad_setting_fails_at_start_up_not_per_request() -> None:
    with limit(RATE="1/minute", EXEMPT_MEHTODS=["OPTIONS"]):
        with pytest.raises(
            ImproperlyConfigured, match=r"\['EXEMPT_MEHTODS'\].*did you mean 'EXEMPT_METHODS'"
        ):
            Client().get("/health")  # the handler builds the middleware chain first
        with pytest.raises(ImproperlyConfigured, match="EXEMPT_MEHTODS"):
            asyncio.run(AsyncClient().get("/health"))


def test_importing_the_package_does_not_import_django(tmp_path: Any) -> None:
    code = "import sys, rust_py_rate_limit; assert 'django' not in sys.modules, 'django'"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_a_request_that_reaches_no_view_is_counted_sync_and_async(clock: ManualClock) -> None:
    with limit(RATE="2/minute", CLOCK=clock):
        client = Client()
        assert [client.get("/no-such-page").status_code for _ in range(3)] == [404, 404, 429]

        async def run() -> list[int]:
            async_client = AsyncClient()
            return [(await async_client.get("/also-missing")).status_code for _ in range(3)]

        clock.advance(60)
        assert asyncio.run(run()) == [404, 404, 429]
