"""Django's OverloadMiddleware: permits, the queue, shedding and the SLA, sync (WSGI) and async
(ASGI), through Django's test clients.

Each test sets ``RUST_PY_RATE_LIMIT["OVERLOAD"]`` and ``MIDDLEWARE`` with ``override_settings``
and builds its clients inside it. Permits are held by the test itself from a limiter given as
``CONCURRENCY`` (shared by every client), or by views blocking on a ``threading.Event``; queue
deadlines pass on a ManualClock. Nothing waits longer than a fraction of a second.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import django_support  # configures Django first
import django_urls
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.test import AsyncClient, Client, RequestFactory, override_settings
from django.urls import URLPattern, path
from in_thread import PATIENCE, InThread, until

from rust_py_rate_limit import ConcurrencyLimiter, ManualClock, Overloaded
from rust_py_rate_limit.django import OverloadMiddleware

OVERLOAD_MIDDLEWARE = "rust_py_rate_limit.django.OverloadMiddleware"
SHED_BODY = {"detail": "Service overloaded, retry later"}
TIMEOUT_BODY = {"detail": "Request took too long"}
#: Long enough for a thread to reach its wait; the tests poll, they do not sleep this long.


class Urls:
    def __init__(self, *patterns: URLPattern) -> None:
        self.urlpatterns = [*django_urls.urlpatterns, *patterns]


def overload(*patterns: URLPattern, middleware: list[str] | None = None, **config: Any) -> Any:
    """Settings for one test: OverloadMiddleware first, ``config`` as the OVERLOAD setting."""
    return override_settings(
        MIDDLEWARE=[OVERLOAD_MIDDLEWARE] if middleware is None else middleware,
        RUST_PY_RATE_LIMIT={"OVERLOAD": config},
        ROOT_URLCONF=Urls(*patterns),
    )


def body(response: HttpResponseBase) -> Any:
    return json.loads(response.content)  # type: ignore[attr-defined]


def sync(middleware: OverloadMiddleware) -> Callable[[HttpRequest], HttpResponseBase]:
    """A middleware built over a sync view, called directly."""
    assert not middleware.async_mode
    return middleware  # type: ignore[return-value]


def by_header(request: HttpRequest) -> int:
    return int(request.headers.get("X-Priority", "0"))


def tenant(request: HttpRequest) -> str:
    return request.headers.get("X-Tenant", "anonymous")


@pytest.fixture(autouse=True)
def _fresh_calls() -> Iterator[None]:
    django_urls.CALLS.clear()
    yield


# --- shedding ----------------------------------------------------------------------------------


def test_a_request_past_the_limit_is_shed_with_503_and_retry_after() -> None:
    limiter = ConcurrencyLimiter(1)
    with overload(CONCURRENCY=limiter):
        client = Client()
        lease = limiter.try_acquire()
        assert lease is not None
        shed = client.get("/plain")
        lease.release()
        served = client.get("/plain")

    assert shed.status_code == 503
    assert shed["Retry-After"] == "1"
    assert shed["Content-Type"] == "application/json"
    assert body(shed) == SHED_BODY
    assert served.status_code == 200
    assert django_urls.CALLS == {"plain": 1}  # the shed request never reached the view
    assert limiter.in_flight == 0


def test_the_permit_is_held_while_the_view_runs_and_only_then_released() -> None:
    entered, leave = threading.Event(), threading.Event()

    def slow(request: HttpRequest) -> HttpResponse:
        entered.set()
        assert leave.wait(PATIENCE)
        return HttpResponse("slow")

    with overload(path("slow", slow), MAX_IN_FLIGHT=1, RETRY_AFTER=7, SHED_STATUS=429):
        client = Client()
        client.get("/health")  # builds the middleware chain before the threads share it
        inside = InThread(lambda: client.get("/slow"))
        assert entered.wait(PATIENCE)
        shed = client.get("/plain")
        leave.set()
        assert inside.result().status_code == 200
        after = client.get("/plain")

    assert (shed.status_code, shed["Retry-After"]) == (429, "7")
    assert after.status_code == 200


def test_exempt_paths_pass_while_the_limit_is_held() -> None:
    limiter = ConcurrencyLimiter(1)
    with overload(CONCURRENCY=limiter, EXEMPT_PATHS=["/health", "/static/*"]):
        client = Client()
        lease = limiter.try_acquire()
        assert lease is not None
        statuses = [client.get(p).status_code for p in ("/health", "/static/app.css", "/plain")]
        lease.release()
    assert statuses == [200, 200, 503]
    assert limiter.stats()["acquired"] == 1  # only the test's own lease: exempt takes none


# --- the queue ----------------------------------------------------------------------------------


def test_a_queued_request_is_served_when_a_permit_frees() -> None:
    limiter = ConcurrencyLimiter(1, queue=1, queue_timeout=PATIENCE)
    with overload(CONCURRENCY=limiter):
        lease = limiter.try_acquire()
        assert lease is not None
        waiting = InThread(lambda: Client().get("/plain"))
        until(lambda: limiter.queued == 1)
        assert django_urls.CALLS == {}
        full = Client().get("/plain")  # the queue's one place is taken
        lease.release()
        served = waiting.result()

    assert served.status_code == 200
    assert (full.status_code, full["Retry-After"]) == (503, "1")
    assert limiter.in_flight == 0
    assert limiter.stats()["queued_total"] == 1


def test_a_queued_request_past_queue_timeout_is_shed(clock: ManualClock) -> None:
    with overload(MAX_IN_FLIGHT=1, QUEUE=1, QUEUE_TIMEOUT=2.0, CLOCK=clock):
        middleware = OverloadMiddleware(lambda request: HttpResponse("ok"))
    limiter = middleware.limiter  # the one the middleware built from the settings
    lease = limiter.try_acquire()
    assert lease is not None
    waiting = InThread(lambda: sync(middleware)(RequestFactory().get("/plain")))
    until(lambda: limiter.queued == 1)
    clock.advance(1.9)
    time.sleep(0.02)
    assert waiting.thread.is_alive()  # still within its queue_timeout
    clock.advance(0.1)
    timed_out = waiting.result()
    lease.release()

    assert (timed_out.status_code, timed_out["Retry-After"]) == (503, "1")
    assert limiter.stats()["timed_out"] == 1
    assert limiter.in_flight == 0 and limiter.queued == 0


def test_priority_sheds_the_least_important_waiter_and_serves_the_most_important(
    clock: ManualClock,
) -> None:
    limiter = ConcurrencyLimiter(1, queue=1, queue_timeout=60.0, clock=clock)
    with overload(CONCURRENCY=limiter, PRIORITY=by_header):
        lease = limiter.try_acquire()
        assert lease is not None
        low = InThread(lambda: Client().get("/plain", headers={"X-Priority": "0"}))
        until(lambda: limiter.queued == 1)
        high = InThread(lambda: Client().get("/plain", headers={"X-Priority": "5"}))
        low_response = low.result()  # pushed out of the queue by the more important request
        until(lambda: limiter.queued == 1)
        lower = Client().get("/plain", headers={"X-Priority": "-1"})  # cannot push it out
        lease.release()
        high_response = high.result()

    assert (low_response.status_code, low_response["Retry-After"]) == (503, "1")
    assert lower.status_code == 503
    assert high_response.status_code == 200
    assert django_urls.CALLS == {"plain": 1}


def test_priority_given_as_a_dotted_path_and_concurrency_key_per_tenant() -> None:
    with overload(
        MAX_IN_FLIGHT=1,
        PRIORITY="test_django_overload.by_header",
        CONCURRENCY_KEY="test_django_overload.tenant",
    ):
        middleware = OverloadMiddleware(lambda request: HttpResponse("ok"))
    held = middleware.limiter.try_acquire("acme")
    assert held is not None
    factory = RequestFactory()
    acme = sync(middleware)(factory.get("/", headers={"X-Tenant": "acme"}))
    other = sync(middleware)(factory.get("/", headers={"X-Tenant": "globex"}))
    held.release()
    assert [acme.status_code, other.status_code] == [503, 200]


# --- the SLA under WSGI: the wait only ----------------------------------------------------------


def test_sync_timeout_answers_408_without_running_the_view_when_the_wait_used_it_up(
    clock: ManualClock,
) -> None:
    # Time spent before the permit came counts against TIMEOUT. Here it passes in the
    # priority function (the clock is advanced there), standing for a wait in the queue.
    def slow_to_rank(request: HttpRequest) -> int:
        clock.advance(1.0)
        return 0

    with overload(MAX_IN_FLIGHT=1, TIMEOUT=1.0, CLOCK=clock, PRIORITY=slow_to_rank):
        response = Client().get("/plain")
    assert response.status_code == 408
    assert body(response) == TIMEOUT_BODY
    assert "Retry-After" not in response
    assert django_urls.CALLS == {}


def test_sync_timeout_never_cuts_a_running_view(clock: ManualClock) -> None:
    def slow(request: HttpRequest) -> HttpResponse:
        clock.advance(10.0)  # the view runs far past TIMEOUT: WSGI cannot stop it
        return HttpResponse("done")

    with overload(path("slow", slow), MAX_IN_FLIGHT=1, TIMEOUT=1.0, CLOCK=clock):
        response = Client().get("/slow")
    assert (response.status_code, response.content) == (200, b"done")


# --- refusals ----------------------------------------------------------------------------------


def own_refusal(request: HttpRequest, error: Overloaded) -> HttpResponse:
    response = JsonResponse({"reason": error.reason, "path": request.path}, status=429)
    response["Retry-After"] = "30"
    return response


def plain_refusal(request: HttpRequest, error: Overloaded) -> HttpResponse:
    return HttpResponse(f"busy: {error.limit}", status=503, content_type="text/plain")


def test_on_overloaded_builds_the_refusal_and_keeps_its_own_retry_after() -> None:
    limiter = ConcurrencyLimiter(2)
    with overload(CONCURRENCY=limiter, ON_OVERLOADED=own_refusal):
        client = Client()
        lease = limiter.try_acquire(cost=2)
        assert lease is not None
        own = client.get("/plain")
    with overload(CONCURRENCY=limiter, ON_OVERLOADED="test_django_overload.plain_refusal"):
        plain = Client().get("/plain")
    lease.release()

    assert (own.status_code, own["Retry-After"], body(own)) == (
        429,
        "30",
        {"reason": "no_permit", "path": "/plain"},
    )
    assert (plain.status_code, plain["Retry-After"], plain.content) == (503, "1", b"busy: 2")


def test_custom_bodies_and_statuses() -> None:
    limiter = ConcurrencyLimiter(1)
    with overload(CONCURRENCY=limiter, BODY="busy", SHED_STATUS=529):
        lease = limiter.try_acquire()
        assert lease is not None
        shed = Client().get("/plain")
        lease.release()
    assert (shed.status_code, shed.content, shed["Content-Type"]) == (
        529,
        b"busy",
        "text/plain; charset=utf-8",
    )


def not_a_response(request: HttpRequest, error: Overloaded) -> Any:
    return {"detail": "no"}


async def async_refusal(request: HttpRequest, error: Overloaded) -> HttpResponse:
    await asyncio.sleep(0)
    return HttpResponse("async busy", status=503)


def test_on_overloaded_must_return_a_response_and_be_sync_under_wsgi() -> None:
    limiter = ConcurrencyLimiter(1)
    lease = limiter.try_acquire()
    assert lease is not None
    with (
        overload(CONCURRENCY=limiter, ON_OVERLOADED=not_a_response),
        pytest.raises(TypeError, match="must return an HttpResponse, not dict"),
    ):
        Client().get("/plain")
    with (
        overload(CONCURRENCY=limiter, ON_OVERLOADED=async_refusal),
        pytest.raises(TypeError, match="returned an awaitable while serving a sync"),
    ):
        Client().get("/plain")
    lease.release()


# --- permits come back -------------------------------------------------------------------------


def test_the_permit_comes_back_after_an_exception_in_the_view() -> None:
    def broken(request: HttpRequest) -> HttpResponse:
        raise RuntimeError("boom")

    async def abroken(request: HttpRequest) -> HttpResponse:
        raise RuntimeError("boom")

    limiter = ConcurrencyLimiter(1)
    with overload(path("broken", broken), path("abroken", abroken), CONCURRENCY=limiter):
        sync_status = Client(raise_request_exception=False).get("/broken").status_code
        assert limiter.in_flight == 0
        async_status = asyncio.run(
            AsyncClient(raise_request_exception=False).get("/abroken")
        ).status_code
        assert limiter.in_flight == 0
        with pytest.raises(RuntimeError, match="boom"):
            Client().get("/broken")
    assert (sync_status, async_status) == (500, 500)
    assert limiter.in_flight == 0
    assert limiter.stats()["acquired"] == 3


def test_a_streaming_response_holds_its_permit_until_it_is_sent() -> None:
    produced: list[int] = []

    def stream(request: HttpRequest) -> StreamingHttpResponse:
        def chunks() -> Iterator[bytes]:
            for n in range(3):
                produced.append(n)
                yield b"%d" % n

        return StreamingHttpResponse(chunks())

    limiter = ConcurrencyLimiter(1)
    with overload(path("stream", stream), CONCURRENCY=limiter):
        client = Client()
        response = client.get("/stream")
        assert limiter.in_flight == 1  # the body is still to be produced
        assert client.get("/plain").status_code == 503
        assert b"".join(response.streaming_content) == b"012"  # type: ignore[arg-type]
        assert limiter.in_flight == 0
        assert client.get("/plain").status_code == 200
    assert produced == [0, 1, 2]


# --- async (ASGI) -------------------------------------------------------------------------------


def test_the_middleware_is_a_coroutine_function_only_with_an_async_handler() -> None:
    from asgiref.sync import iscoroutinefunction

    async def async_get_response(request: HttpRequest) -> HttpResponse:
        return HttpResponse()

    with overload(MAX_IN_FLIGHT=2):
        assert OverloadMiddleware.sync_capable and OverloadMiddleware.async_capable
        assert not iscoroutinefunction(OverloadMiddleware(lambda request: HttpResponse()))
        assert iscoroutinefunction(OverloadMiddleware(async_get_response))


def test_async_shed_queue_and_on_overloaded(clock: ManualClock) -> None:
    limiter = ConcurrencyLimiter(1, queue=1, queue_timeout=60.0, clock=clock)
    with overload(CONCURRENCY=limiter, ON_OVERLOADED=async_refusal):
        client = AsyncClient()

        async def run() -> tuple[int, int, bytes, str]:
            lease = limiter.try_acquire()
            assert lease is not None
            queued = asyncio.ensure_future(client.get("/async"))
            while limiter.queued == 0:
                await asyncio.sleep(0.001)
            shed = await client.get("/async")  # the queue's one place is taken
            lease.release()
            served = await queued
            return served.status_code, shed.status_code, shed.content, shed["Retry-After"]

        assert asyncio.run(run()) == (200, 503, b"async busy", "1")
    assert limiter.in_flight == 0
    assert django_urls.CALLS == {"async_plain": 1}


def test_async_timeout_cancels_the_view_and_answers_408() -> None:
    events: list[str] = []

    async def sleepy(request: HttpRequest) -> HttpResponse:
        events.append("started")
        try:
            await asyncio.sleep(PATIENCE)
        except asyncio.CancelledError:
            events.append("cancelled")
            raise
        return HttpResponse("late")

    limiter = ConcurrencyLimiter(1)
    with overload(path("sleepy", sleepy), CONCURRENCY=limiter, TIMEOUT=0.1):
        client = AsyncClient()

        async def run() -> tuple[HttpResponseBase, float]:
            started = time.monotonic()
            response = await client.get("/sleepy")
            return response, time.monotonic() - started

        response, took = asyncio.run(run())
        fast = asyncio.run(client.get("/async"))
    assert response.status_code == 408
    assert body(response) == TIMEOUT_BODY
    assert "Retry-After" not in response
    assert events == ["started", "cancelled"]
    assert took < 1.0
    assert limiter.in_flight == 0
    assert fast.status_code == 200  # a view within the timeout is served as usual
    assert limiter.stats()["deadline_missed"] == 1


def test_async_timeout_counts_the_queue_wait(clock: ManualClock) -> None:
    # The clock moves in the priority function, standing for time spent waiting.
    def slow_to_rank(request: HttpRequest) -> int:
        clock.advance(0.5)
        return 0

    with overload(MAX_IN_FLIGHT=1, TIMEOUT=0.5, CLOCK=clock, PRIORITY=slow_to_rank):
        response = asyncio.run(AsyncClient().get("/async"))
    assert response.status_code == 408
    assert django_urls.CALLS == {}


def test_sync_middleware_below_runs_the_overload_middleware_in_sync_mode_under_asgi() -> None:
    limiter = ConcurrencyLimiter(1)
    sync_only = "test_django_overload.SyncOnlyMiddleware"
    with overload(middleware=[OVERLOAD_MIDDLEWARE, sync_only], CONCURRENCY=limiter):
        lease = limiter.try_acquire()
        assert lease is not None
        shed = asyncio.run(AsyncClient().get("/plain"))
        lease.release()
        served = asyncio.run(AsyncClient().get("/plain"))
    assert (shed.status_code, shed["Retry-After"], served.status_code) == (503, "1", 200)
    assert limiter.in_flight == 0


class SyncOnlyMiddleware:
    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        return self.get_response(request)


# --- with RateLimitMiddleware --------------------------------------------------------------------


def test_both_middlewares_read_one_setting(clock: ManualClock) -> None:
    with override_settings(
        MIDDLEWARE=[OVERLOAD_MIDDLEWARE, django_support.MIDDLEWARE],
        RUST_PY_RATE_LIMIT={"RATE": "2/minute", "CLOCK": clock, "OVERLOAD": {"MAX_IN_FLIGHT": 4}},
    ):
        client = Client()
        statuses = [client.get("/plain").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


# --- settings ----------------------------------------------------------------------------------


BAD_OVERLOAD_SETTINGS: list[tuple[dict[str, Any], str]] = [
    ({"MAX_INFLIGHT": 4}, r"\['OVERLOAD'\]\['MAX_INFLIGHT'\].*did you mean 'MAX_IN_FLIGHT'"),
    ({}, r"give `max_in_flight`"),
    ({"MAX_IN_FLIGHT": 0}, r"\['OVERLOAD'\]\['MAX_IN_FLIGHT'\] is invalid"),
    ({"MAX_IN_FLIGHT": "many"}, r"\['OVERLOAD'\]\['MAX_IN_FLIGHT'\] is invalid"),
    ({"MAX_IN_FLIGHT": 2, "QUEUE": -1}, r"\['OVERLOAD'\]\['QUEUE'\] is invalid"),
    ({"MAX_IN_FLIGHT": 2, "QUEUE": None}, r"\['OVERLOAD'\]\['QUEUE'\] must not be None"),
    ({"MAX_IN_FLIGHT": 2, "ORDER": "random"}, r"\['OVERLOAD'\]\['ORDER'\] is invalid"),
    ({"MAX_IN_FLIGHT": 2, "SHED_STATUS": 200}, r"\['SHED_STATUS'\] is invalid.*4xx/5xx"),
    ({"MAX_IN_FLIGHT": 2, "TIMEOUT_STATUS": "408"}, r"\['TIMEOUT_STATUS'\] is invalid"),
    ({"MAX_IN_FLIGHT": 2, "RETRY_AFTER": -1}, r"\['RETRY_AFTER'\] is invalid"),
    ({"MAX_IN_FLIGHT": 2, "TIMEOUT": 0}, r"\['OVERLOAD'\]\['TIMEOUT'\] is invalid"),
    (
        {"MAX_IN_FLIGHT": 2, "QUEUE": 1, "QUEUE_TIMEOUT": 2.0, "TIMEOUT": 1.0},
        r"\['QUEUE_TIMEOUT'\] is invalid.*must not exceed `timeout`",
    ),
    ({"MAX_IN_FLIGHT": 2, "PRIORITY": 3}, r"\['PRIORITY'\] must be a callable"),
    (
        {"MAX_IN_FLIGHT": 2, "PRIORITY": "test_django_overload.nope"},
        r"\['PRIORITY'\] must be a callable or the dotted path to one; cannot import",
    ),
    (
        {"MAX_IN_FLIGHT": 2, "ON_OVERLOADED": lambda request: None},
        r"\['ON_OVERLOADED'\] is invalid.*on_overloaded\(request, error\)",
    ),
    (
        {"MAX_IN_FLIGHT": 2, "CONCURRENCY": ConcurrencyLimiter(2)},
        r"\['CONCURRENCY'\] is invalid.*not both \(max_in_flight\)",
    ),
    ({"CONCURRENCY": "test_django_overload.by_header"}, r"\['CONCURRENCY'\] must be a Conc"),
    ({"MAX_IN_FLIGHT": 2, "CLOCK": 1}, r"\['CLOCK'\] must be a ManualClock"),
    ({"MAX_IN_FLIGHT": 2, "EXEMPT_PATHS": [1]}, r"\['EXEMPT_PATHS'\] entries must be str"),
    ({"MAX_IN_FLIGHT": 2, "BODY": 1.5}, r"\['BODY'\] is invalid"),
    ({"MAX_IN_FLIGHT": 2, "TIMEOUT_BODY": 1.5}, r"\['TIMEOUT_BODY'\] is invalid"),
    ({"MAX_IN_FLIGHT": 2, "ADAPTIVE": "aimd"}, r"\['ADAPTIVE'\] is invalid.*limit='auto'"),
    ({"MAX_IN_FLIGHT": "auto", "INITIAL_LIMIT": 0}, r"\['INITIAL_LIMIT'\] is invalid"),
    ({"MAX_IN_FLIGHT": "auto", "MIN_LIMIT": -1}, r"\['MIN_LIMIT'\] is invalid"),
    ({"MAX_IN_FLIGHT": "auto", "MAX_LIMIT": "x"}, r"\['MAX_LIMIT'\] is invalid"),
    ({"MAX_IN_FLIGHT": 2, "CONCURRENCY_KEY": 5}, r"\['CONCURRENCY_KEY'\] must be a callable"),
    ({"MAX_IN_FLIGHT": 2, "NAME": " "}, r"\['NAME'\] is invalid.*`name` must not be empty"),
]


def test_every_overload_setting_has_a_bad_value_tested() -> None:
    from rust_py_rate_limit.django.overload_config import OVERLOAD_NAMES

    named = {name for config, _ in BAD_OVERLOAD_SETTINGS for name in config}
    assert named >= OVERLOAD_NAMES


@pytest.mark.parametrize(("config", "message"), BAD_OVERLOAD_SETTINGS)
def test_bad_settings_fail_at_start_up_naming_the_setting(
    config: dict[str, Any], message: str
) -> None:
    with overload(**config):
        with pytest.raises(ImproperlyConfigured, match=message):
            Client().get("/health")
        with pytest.raises(ImproperlyConfigured, match=message):
            asyncio.run(AsyncClient().get("/health"))


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"OVERLOAD": [8]}, r"\['OVERLOAD'\] must be a dict, not list"),
        ({"RATE": "1/second"}, r"\['OVERLOAD'\] is not set"),
        ({"OVERLOD": {"MAX_IN_FLIGHT": 1}}, "did you mean 'OVERLOAD'"),
        ({"OVERLOAD": None}, r"\['OVERLOAD'\] must not be None"),
    ],
)
def test_the_overload_setting_itself_must_be_a_dict_and_present(
    setting: dict[str, Any], message: str
) -> None:
    with (
        override_settings(MIDDLEWARE=[OVERLOAD_MIDDLEWARE], RUST_PY_RATE_LIMIT=setting),
        pytest.raises(ImproperlyConfigured, match=message),
    ):
        Client().get("/health")


def test_timeout_none_means_no_timeout_and_dotted_paths_load(clock: ManualClock) -> None:
    with overload(MAX_IN_FLIGHT=3, TIMEOUT=None, CLOCK="django_support.CLOCK"):
        middleware = OverloadMiddleware(lambda request: HttpResponse())
    assert middleware.policy.timeout is None
    assert middleware.limiter.limit == 3
