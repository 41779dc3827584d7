"""One behaviour across FastAPI, Django and Flask, in memory and on Redis.

Each framework builds the same site: a default limit of 3 a minute over every request, and

- ``/plain``: no limit of its own;
- ``/own``: 5 a minute of its own, which replaces the default on that route;
- ``/both``: 5 a minute of its own with ``override_defaults=False``: counted by both;
- ``/writes``: 1 a minute of its own for POST only (``methods=``); a GET is the default's.

The same requests must get the same answers from all three, and with ``storage=`` every limiter
the site builds (default and per route) keeps its counts on Redis: two copies of the site (two
workers) share them, and with Redis down every route answers by ``on_storage_error``.
"""

from __future__ import annotations

import contextlib
import itertools
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import django_support  # configures Django before anything below touches settings  # noqa: F401
import django_urls
import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client as DjangoClient
from django.test import override_settings
from django.urls import path
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from flask import Flask
from redis_support import RedisServer, RespClient

from rust_py_rate_limit import Decision, ManualClock, RateLimitExceeded
from rust_py_rate_limit.django import ratelimit
from rust_py_rate_limit.fastapi import Limiter, RateLimit, RateLimitMiddleware, RateLimitRefused
from rust_py_rate_limit.flask import FlaskRateLimiter

#: (method, path) -> (status, {header: value}) for one running site.
Call = Callable[[str, str], tuple[int, dict[str, str]]]
Site = Callable[..., contextlib.AbstractContextManager[Call]]

_PREFIXES = itertools.count()


def _headers(items: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in items}


@contextlib.contextmanager
def fastapi_site(clock: ManualClock, **settings: Any) -> Iterator[Call]:
    app = FastAPI()
    app.add_middleware(RateLimitMiddleware, rate="3/minute", clock=clock, **settings)
    limiter = Limiter(clock=clock, **settings)

    @app.get("/plain")
    def plain() -> str:
        return "plain"

    @app.get("/own")
    @limiter.limit("5/minute")
    def own() -> str:
        return "own"

    both = RateLimit("5/minute", clock=clock, override_defaults=False, **settings)

    @app.get("/both", dependencies=[Depends(both)])
    def both_route() -> str:
        return "both"

    @app.api_route("/writes", methods=["GET", "POST"])
    @limiter.limit("1/minute", methods=["POST"])
    def writes() -> str:
        return "writes"

    client = TestClient(app)

    def call(method: str, url: str) -> tuple[int, dict[str, str]]:
        response = client.request(method, url)
        return response.status_code, _headers(response.headers.items())

    yield call


@contextlib.contextmanager
def flask_site(clock: ManualClock, **settings: Any) -> Iterator[Call]:
    app = Flask(__name__)
    limiter = FlaskRateLimiter(app, rate="3/minute", clock=clock, **settings)

    @app.get("/plain")
    def plain() -> str:
        return "plain"

    @app.get("/own")
    @limiter.limit("5/minute")
    def own() -> str:
        return "own"

    @app.get("/both")
    @limiter.limit("5/minute", override_defaults=False)
    def both() -> str:
        return "both"

    @app.route("/writes", methods=["GET", "POST"])
    @limiter.limit("1/minute", methods=["POST"])
    def writes() -> str:
        return "writes"

    client = app.test_client()

    def call(method: str, url: str) -> tuple[int, dict[str, str]]:
        response = client.open(url, method=method)
        return response.status_code, _headers(response.headers.items())

    yield call


@contextlib.contextmanager
def django_site(clock: ManualClock, **settings: Any) -> Iterator[Call]:
    config = {"RATE": "3/minute", "CLOCK": clock, **{k.upper(): v for k, v in settings.items()}}
    with override_settings(RUST_PY_RATE_LIMIT=config):
        # The views' own limits read the site's storage from the setting when decorated.
        def plain(request: HttpRequest) -> HttpResponse:
            return HttpResponse("plain")

        @ratelimit("5/minute", clock=clock)
        def own(request: HttpRequest) -> HttpResponse:
            return HttpResponse("own")

        @ratelimit("5/minute", clock=clock, override_defaults=False)
        def both(request: HttpRequest) -> HttpResponse:
            return HttpResponse("both")

        @ratelimit("1/minute", clock=clock, methods=["POST"])
        def writes(request: HttpRequest) -> HttpResponse:
            return HttpResponse("writes")

        class Urls:
            urlpatterns: ClassVar[list[Any]] = [
                *django_urls.urlpatterns,
                path("plain", plain),
                path("own", own),
                path("both", both),
                path("writes", writes),
            ]

        with override_settings(ROOT_URLCONF=Urls):
            client = DjangoClient()

            def call(method: str, url: str) -> tuple[int, dict[str, str]]:
                response = client.generic(method, url)
                return response.status_code, _headers(response.headers.items())

            yield call


SITES: dict[str, Site] = {"fastapi": fastapi_site, "flask": flask_site, "django": django_site}


@pytest.fixture(params=["memory", "redis"])
def storage(request: pytest.FixtureRequest) -> dict[str, Any]:
    """No storage settings (memory), or a Redis URL with a fresh key prefix."""
    if request.param == "memory":
        return {}
    server: RedisServer = request.getfixturevalue("redis_server")
    request.getfixturevalue("redis")  # started and emptied
    return {"storage": server.url, "key_prefix": f"site{next(_PREFIXES)}", "timeout": 2.0}


def statuses(call: Call, method: str, url: str, n: int) -> list[int]:
    return [call(method, url)[0] for _ in range(n)]


@pytest.mark.parametrize("site", SITES)
def test_a_routes_own_limit_replaces_the_default(site: str, storage: dict[str, Any]) -> None:
    with SITES[site](ManualClock(), **storage) as call:
        own = [call("GET", "/own") for _ in range(6)]
        assert [status for status, _ in own] == [200] * 5 + [429]
        assert {headers["x-ratelimit-limit"] for _, headers in own} == {"5"}
        # the default limit counted none of them
        assert statuses(call, "GET", "/plain", 4) == [200, 200, 200, 429]


@pytest.mark.parametrize("site", SITES)
def test_override_defaults_false_counts_both(site: str, storage: dict[str, Any]) -> None:
    with SITES[site](ManualClock(), **storage) as call:
        both = [call("GET", "/both") for _ in range(4)]
        assert [status for status, _ in both] == [200, 200, 200, 429]
        assert both[0][1]["x-ratelimit-limit"] == "5"  # the route's own headers while admitted
        assert both[3][1]["x-ratelimit-limit"] == "3"  # the default refused it
        assert call("GET", "/plain")[0] == 429  # the default is spent
        assert call("GET", "/own")[0] == 200  # a route that replaces it is not


@pytest.mark.parametrize("site", SITES)
def test_methods_limit_only_those_methods(site: str, storage: dict[str, Any]) -> None:
    with SITES[site](ManualClock(), **storage) as call:
        # GET is not the route limit's: the default counts it
        assert statuses(call, "GET", "/writes", 4) == [200, 200, 200, 429]
        # POST is: its own limit of 1, and the spent default does not count it
        first, second = call("POST", "/writes"), call("POST", "/writes")
        assert (first[0], first[1]["x-ratelimit-limit"]) == (200, "1")
        assert (second[0], second[1]["retry-after"]) == (429, "60")


@pytest.mark.parametrize("site", SITES)
def test_limits_move_with_the_clock(site: str, storage: dict[str, Any]) -> None:
    clock = ManualClock()
    with SITES[site](clock, **storage) as call:
        assert statuses(call, "GET", "/plain", 4)[-1] == 429
        assert statuses(call, "POST", "/writes", 2) == [200, 429]
        clock.advance(60)
        assert call("GET", "/plain")[0] == 200
        assert call("POST", "/writes")[0] == 200


# --- on Redis: every limiter of the site, shared by workers, and an outage -----------------


@pytest.mark.parametrize("site", SITES)
def test_two_workers_on_redis_share_every_limit(
    site: str, redis_server: RedisServer, redis: RespClient
) -> None:
    clock = ManualClock()
    prefix = f"shared{next(_PREFIXES)}"
    settings = {"storage": redis_server.url, "key_prefix": prefix}
    with SITES[site](clock, **settings) as one, SITES[site](clock, **settings) as two:
        # the default limit (3): two requests on one worker, the third and fourth on the other
        assert [one("GET", "/plain")[0], one("GET", "/plain")[0]] == [200, 200]
        assert [two("GET", "/plain")[0], two("GET", "/plain")[0]] == [200, 429]
        # a route's own limit (1 POST a minute) too
        assert one("POST", "/writes")[0] == 200
        assert two("POST", "/writes")[0] == 429
    # the counts are on Redis under the site's prefix: the default's and the route's
    keys = redis.call("KEYS", f"{prefix}*")
    assert len(keys) == 2, keys


@pytest.mark.parametrize("site", SITES)
@pytest.mark.parametrize(("policy", "status"), [("deny", 429), ("allow", 200)])
def test_with_redis_down_every_route_follows_on_storage_error(
    site: str, policy: str, status: int, redis_server: RedisServer, redis: RespClient
) -> None:
    dead = RedisServer().start()
    url = dead.url
    dead.close()  # nothing listens there any more
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with SITES[site](ManualClock(), storage=url, on_storage_error=policy, timeout=2.0) as call:
            answers = {url: call("GET", url)[0] for url in ("/plain", "/own", "/both")}
            answers["POST /writes"] = call("POST", "/writes")[0]
    # before, the per-route limits lived in memory and kept answering 200 while / failed
    assert answers == {"/plain": status, "/own": status, "/both": status, "POST /writes": status}


# --- one signature for on_blocked, one exception hierarchy, one key setting ------------------


def test_on_blocked_takes_the_request_and_the_decision_everywhere(clock: ManualClock) -> None:
    seen: list[tuple[str, int]] = []

    def fastapi_hook(request: Any, decision: Decision) -> Any:
        from starlette.responses import PlainTextResponse

        seen.append((type(request).__name__, decision.limit))
        return PlainTextResponse("no", status_code=418)

    def flask_hook(request: Any, decision: Decision) -> Any:
        seen.append((type(request).__name__, decision.limit))
        return "no", 418

    def django_hook(request: Any, decision: Decision) -> Any:
        seen.append((type(request).__name__, decision.limit))
        return HttpResponse("no", status=418)

    app = FastAPI()
    app.add_middleware(RateLimitMiddleware, rate="1/minute", clock=clock, on_blocked=fastapi_hook)
    app.get("/")(lambda: "ok")
    client = TestClient(app)
    assert [client.get("/").status_code for _ in range(2)] == [200, 418]

    flask = Flask(__name__)
    FlaskRateLimiter(flask, rate="1/minute", clock=clock, on_blocked=flask_hook)
    flask.get("/")(lambda: "ok")
    assert [flask.test_client().get("/").status_code for _ in range(2)] == [200, 418]

    config = {"RATE": "1/minute", "CLOCK": clock, "ON_BLOCKED": django_hook}
    with override_settings(RUST_PY_RATE_LIMIT=config):
        django_client = DjangoClient()
        assert [django_client.get("/plain").status_code for _ in range(2)] == [200, 418]
    assert seen == [("Request", 1), ("Request", 1), ("WSGIRequest", 1)]


def test_a_hook_of_the_decision_alone_fails_at_configuration() -> None:
    def hook(decision: Decision) -> Any:
        return None

    with pytest.raises(TypeError, match=r"on_blocked\(request, decision\).*hook\(decision"):
        RateLimitMiddleware(FastAPI(), rate="1/minute", on_blocked=hook)
    with pytest.raises(TypeError, match=r"on_blocked\(request, decision\)"):
        Limiter(on_blocked=hook)
    with pytest.raises(TypeError, match=r"on_blocked\(request, decision\)"):
        ratelimit("1/minute", on_blocked=hook)
    # Flask's first signature was the decision alone: still called, with a DeprecationWarning
    with pytest.warns(DeprecationWarning, match=r"\(request, decision\)"):
        FlaskRateLimiter(Flask(__name__), rate="1/minute", on_blocked=hook)


def test_every_refusal_exception_is_a_rate_limit_exceeded(clock: ManualClock) -> None:
    assert issubclass(RateLimitRefused, RateLimitExceeded)
    app = FastAPI()
    caught: list[RateLimitExceeded] = []

    @app.exception_handler(RateLimitRefused)
    async def handler(request: Any, exc: RateLimitRefused) -> Any:
        caught.append(exc)
        return exc.response

    @app.get("/", dependencies=[Depends(RateLimit("1/minute", clock=clock))])
    def index() -> str:
        return "ok"

    client = TestClient(app)
    assert [client.get("/").status_code for _ in range(2)] == [200, 429]
    (refused,) = caught
    assert (refused.limit, refused.remaining, refused.retry_after) == (1, 0, 60.0)
    # the route's scope, then the client
    assert ".test_every_refusal_exception_is_a_rate_limit_exceeded.<locals>.index:" in refused.key
    assert refused.decision is not None and not refused.decision.allowed


def test_key_is_the_deprecated_spelling_of_key_func(clock: ManualClock) -> None:
    with pytest.warns(DeprecationWarning, match="`key_func`"):
        RateLimit("1/minute", key="user")
    with pytest.warns(DeprecationWarning, match="`key_func`"):
        Limiter().limit("1/minute", key="user")
    with pytest.warns(DeprecationWarning, match="`key_func`"):
        ratelimit("1/minute", key="user")
    with pytest.warns(DeprecationWarning, match="`key_func`"):
        FlaskRateLimiter().limit("1/minute", key="user")
    with pytest.raises(TypeError, match="give `key_func` only"):
        RateLimit("1/minute", key="user", key_func="ip")
    flask = Flask(__name__)
    flask.config["RATELIMIT_KEY"] = "ip"
    with pytest.warns(DeprecationWarning, match="RATELIMIT_KEY_FUNC"):
        FlaskRateLimiter(flask, rate="1/minute")
    config = {"RATE": "1/minute", "KEY": "ip"}
    with override_settings(RUST_PY_RATE_LIMIT=config), pytest.warns(DeprecationWarning):
        DjangoClient().get("/plain")


# --- X-RateLimit-Reset as a Unix time ----------------------------------------------------------


@pytest.mark.parametrize("site", SITES)
def test_reset_format_epoch(site: str) -> None:
    clock = ManualClock()
    before = time.time()
    if site == "fastapi":
        app = FastAPI()
        app.add_middleware(RateLimitMiddleware, rate="3/minute", clock=clock, reset_format="epoch")
        app.get("/plain")(lambda: "ok")
        reset = TestClient(app).get("/plain").headers["x-ratelimit-reset"]
    elif site == "flask":
        flask = Flask(__name__)
        flask.config["RATELIMIT_RESET_FORMAT"] = "epoch"
        FlaskRateLimiter(flask, rate="3/minute", clock=clock)
        flask.get("/plain")(lambda: "ok")
        reset = flask.test_client().get("/plain").headers["X-RateLimit-Reset"]
    else:
        config = {"RATE": "3/minute", "CLOCK": clock, "RESET_FORMAT": "epoch"}
        with override_settings(RUST_PY_RATE_LIMIT=config):
            reset = DjangoClient().get("/plain")["X-RateLimit-Reset"]
    assert before + 60 <= int(reset) <= time.time() + 61


# --- errors name what the user wrote ------------------------------------------------------------


def test_an_unknown_keyword_names_the_public_function() -> None:
    with pytest.raises(TypeError, match=r"^FlaskRateLimiter\.limit\(\) got an unexpected"):
        FlaskRateLimiter().limit("1/minute", kee="ip")  # type: ignore[call-overload]
    with pytest.raises(TypeError, match=r"^Limiter\.limit\(\) got an unexpected"):
        Limiter().limit("1/minute", kee="ip")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"^ratelimit\(\) got an unexpected"):
        ratelimit("1/minute", kee="ip")  # type: ignore[call-arg]


@pytest.mark.parametrize("site", SITES)
def test_a_key_function_returning_a_non_str_names_the_setting(site: str) -> None:
    clock = ManualClock()
    if site == "fastapi":
        app = FastAPI()
        app.add_middleware(RateLimitMiddleware, rate="3/minute", clock=clock, key_func=lambda r: 5)
        app.get("/")(lambda: "ok")
        with pytest.raises(TypeError, match=r"the key function \(`key_func`\) must return a str"):
            TestClient(app).get("/")
    elif site == "flask":
        flask = Flask(__name__)
        FlaskRateLimiter(flask, rate="3/minute", clock=clock, key_func=lambda r: 5)
        flask.get("/")(lambda: "ok")
        flask.testing = True
        with pytest.raises(TypeError, match=r"the key function \(`key_func`\) must return a str"):
            flask.test_client().get("/")
    else:
        config = {"RATE": "3/minute", "CLOCK": clock, "KEY_FUNC": lambda r: 5}
        with (
            override_settings(RUST_PY_RATE_LIMIT=config),
            pytest.raises(TypeError, match=r"the key function \(`key_func`\) must return a str"),
        ):
            DjangoClient().get("/plain")


@pytest.mark.parametrize("site", ["flask", "django"])
def test_a_default_limiter_on_redis_puts_the_route_limits_there_too(
    site: str, redis_server: RedisServer, redis: RespClient
) -> None:
    """Given as a ready limiter (Flask's ``limiter=``, Django's ``LIMITER``), the site's limit
    is the app's storage: per-route limits are built like it, ``with_rate``, so on Redis."""
    from rust_py_rate_limit import RateLimiter

    clock = ManualClock()
    prefix = f"given{next(_PREFIXES)}"
    site_limiter = RateLimiter.from_rate(
        "3/minute", storage=redis_server.url, key_prefix=prefix, clock=clock
    )
    if site == "flask":
        app = Flask(__name__)
        limiter = FlaskRateLimiter(app, limiter=site_limiter)

        @app.get("/own")
        @limiter.limit("5/minute", algorithm="gcra")
        def own() -> str:
            return "own"

        client = app.test_client()
        assert client.get("/own").status_code == 200
    else:
        with override_settings(RUST_PY_RATE_LIMIT={"LIMITER": site_limiter}):

            @ratelimit("5/minute", algorithm="gcra")
            def view(request: HttpRequest) -> HttpResponse:
                return HttpResponse("own")

            class Urls:
                urlpatterns: ClassVar[list[Any]] = [path("own", view)]

            with override_settings(ROOT_URLCONF=Urls):
                assert DjangoClient().get("/own").status_code == 200
    keys = redis.call("KEYS", f"{prefix}*")
    assert len(keys) == 1 and "gcra:5:" in keys[0], keys
