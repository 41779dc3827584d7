"""One list of settings for every web integration: the TypedDicts of ``settings.py``.

Each integration takes the settings of its shape (``PolicySettings``, ``SharedSettings``,
``RouteSettings``) and nothing else; the runtime check is read from the same classes, so these
tests fail when a TypedDict and an integration disagree.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import django_support  # noqa: F401  (configures Django before the decorator is used)
import pytest
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory
from fastapi import FastAPI
from fastapi.testclient import TestClient
from flask import Flask

from rust_py_rate_limit import ManualClock, RateLimiter
from rust_py_rate_limit.django import ratelimit
from rust_py_rate_limit.fastapi import Limiter, RateLimit, RateLimitMiddleware
from rust_py_rate_limit.flask import FlaskRateLimiter
from rust_py_rate_limit.policy import (
    LIMITER_SETTINGS,
    POLICY_SETTINGS,
    REQUEST_SETTINGS,
    STORAGE_SETTINGS,
    RequestPolicy,
)
from rust_py_rate_limit.settings import (
    REQUEST_DEFAULTS,
    LimiterSettings,
    PolicySettings,
    RequestSettings,
    RouteSettings,
    SharedSettings,
    StorageSettings,
    reject_unknown,
    setting_names,
)

#: A valid value of every setting (None for the storage ones: memory, no Redis needed).
SAMPLES: dict[str, Any] = {
    "storage": None,
    "key_prefix": None,
    "timeout": None,
    "on_storage_error": None,
    "fallback": None,
    "local_deny_cache": None,
    "on_full": "reject",
    "algorithm": "fixed",
    "burst": None,
    "max_keys": 100,
    "cleanup_interval": 30.0,
    "clock": ManualClock(),
    "key_func": "header:X-Api-Key",
    "trusted_proxies": ["10.0.0.0/8"],
    "cost": 2,
    "methods": ["POST"],
    "exempt_paths": ["/health"],
    "exempt_methods": ["OPTIONS"],
    "dynamic_limit": lambda request: None,
    "headers": "ietf",
    "reset_format": "epoch",
    "name": "api",
    "status_code": 503,
    "body": "slow down",
    "limit": 5,
    "window_seconds": 60,
}
WINDOW = {"limit": 5, "window_seconds": 60}


def view(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


#: Each integration taking ``**settings``: its shape and a call with some of them.
ADAPTERS: dict[str, tuple[type, Callable[[dict[str, Any]], object]]] = {
    "RequestPolicy": (PolicySettings, lambda s: RequestPolicy(**{**WINDOW, **s})),
    "RateLimitMiddleware": (
        PolicySettings,
        lambda s: RateLimitMiddleware(FastAPI(), **{**WINDOW, **s}),
    ),
    "RateLimit": (PolicySettings, lambda s: RateLimit(**{**WINDOW, **s})),
    "ratelimit": (PolicySettings, lambda s: ratelimit(**{**WINDOW, **s})(view)),
    "Limiter": (SharedSettings, lambda s: Limiter(**s)),
    "Limiter.limit": (RouteSettings, lambda s: Limiter().limit("5/minute", **s)),
    "Limiter.dependency": (RouteSettings, lambda s: Limiter().dependency("5/minute", **s)),
    "FlaskRateLimiter.limit": (
        RouteSettings,
        lambda s: FlaskRateLimiter().limit("5/minute", **s),
    ),
}


def test_the_runtime_names_are_the_typeddicts_keys() -> None:
    assert tuple(StorageSettings.__annotations__) == STORAGE_SETTINGS
    assert set(LIMITER_SETTINGS) == set(LimiterSettings.__annotations__)
    assert set(REQUEST_SETTINGS) == set(RequestSettings.__annotations__)
    assert set(POLICY_SETTINGS) == set(PolicySettings.__annotations__)
    assert set(REQUEST_DEFAULTS) == set(RequestSettings.__annotations__)
    for shape in (StorageSettings, LimiterSettings, RequestSettings, RouteSettings):
        assert shape.__required_keys__ == frozenset(), shape  # type: ignore[attr-defined]
    # every setting of every shape is one of PolicySettings' (one list, grouped)
    assert set(setting_names(RouteSettings, SharedSettings)) <= POLICY_SETTINGS
    assert STORAGE_SETTINGS[0] == "storage"


def test_every_setting_has_a_sample_here() -> None:
    # A new setting in a TypedDict fails here until it has a sample, and so is tried below
    # on every integration.
    assert set(SAMPLES) == set(setting_names(PolicySettings))


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_each_integration_takes_every_setting_of_its_shape(adapter: str) -> None:
    shape, call = ADAPTERS[adapter]
    for name in setting_names(shape):
        call({name: SAMPLES[name]})
    call({name: SAMPLES[name] for name in setting_names(shape) if name != "burst"})


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_each_integration_names_a_setting_outside_its_shape(adapter: str) -> None:
    shape, call = ADAPTERS[adapter]
    outside = sorted(POLICY_SETTINGS - set(setting_names(shape)) - set(WINDOW))
    for name in [*outside, "kee_func"]:
        with pytest.raises(
            TypeError, match=rf"^{adapter}\(\) got an unexpected keyword argument '{name}'"
        ):
            call({name: SAMPLES.get(name, "ip")})


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_misspelled_setting_gets_a_did_you_mean(adapter: str) -> None:
    _, call = ADAPTERS[adapter]
    with pytest.raises(TypeError, match=r"'exempt_method' \(did you mean 'exempt_methods'\?\)"):
        call({"exempt_method": ["OPTIONS"]})


def test_reject_unknown_gives_no_hint_for_an_unrelated_name() -> None:
    with pytest.raises(TypeError) as error:
        reject_unknown({"colour": 1}, ["key_func", "cost"], "f")
    assert str(error.value) == "f() got an unexpected keyword argument 'colour'"
    reject_unknown({"cost": 1}, ["key_func", "cost"], "f")


# --- settings that one list now gives to every integration ------------------------------------


def test_a_fastapi_limiter_holds_the_request_settings_as_defaults() -> None:
    limiter = Limiter(cost=2, exempt_paths=["/health"], clock=ManualClock())
    app = FastAPI()

    @app.get("/")
    @limiter.limit("4/minute")
    def home() -> str:
        return "ok"

    @app.get("/health")
    @limiter.limit("1/minute")
    def health() -> str:
        return "ok"

    client = TestClient(app)
    assert [client.get("/").status_code for _ in range(3)] == [200, 200, 429]
    assert [client.get("/health").status_code for _ in range(3)] == [200, 200, 200]


def test_a_flask_route_limit_names_its_policy() -> None:
    app = Flask(__name__)
    limiter = FlaskRateLimiter(app, headers="ietf")

    @app.get("/search")
    @limiter.limit("3/minute", name="search")
    def search() -> str:
        return "ok"

    response = app.test_client().get("/search")
    assert response.headers["RateLimit-Policy"] == '"search";q=3;w=60'


@pytest.mark.parametrize("where", ["argument", "config"])
def test_the_flask_default_limit_is_named_as_django_and_starlette_name_theirs(where: str) -> None:
    app = Flask(__name__)
    if where == "config":
        app.config.update(RATELIMIT_RATE="5/minute", RATELIMIT_NAME="site")
        limiter = FlaskRateLimiter(app, headers="ietf")
    else:
        limiter = FlaskRateLimiter(app, rate="5/minute", headers="ietf", name="site")

    @app.get("/")
    def index() -> str:
        return "ok"

    @app.get("/search")
    @limiter.limit("3/minute")
    def search() -> str:
        return "ok"

    client = app.test_client()
    assert client.get("/").headers["RateLimit-Policy"] == '"site";q=5;w=60'
    # a route's own limit keeps its own name (its endpoint's), not the default's
    assert client.get("/search").headers["RateLimit-Policy"] == '"search";q=3;w=60'
    unnamed = Flask(__name__)
    FlaskRateLimiter(unnamed, rate="5/minute", headers="ietf")
    unnamed.get("/")(index)
    assert unnamed.test_client().get("/").headers["RateLimit-Policy"] == '"default";q=5;w=60'


def test_a_bad_flask_name_is_named() -> None:
    with pytest.raises(ValueError, match=r"`name`: a policy name must be printable ASCII"):
        FlaskRateLimiter(name="")
    app = Flask(__name__)
    app.config.update(RATELIMIT_RATE="5/minute", RATELIMIT_NAME=5)
    with pytest.raises(TypeError, match=r"RATELIMIT_NAME: a policy name must be a str, not int"):
        FlaskRateLimiter(app)


def test_a_django_view_limit_takes_exempt_paths() -> None:
    limited = ratelimit("1/minute", exempt_paths=["/open"], clock=ManualClock())(view)
    factory = RequestFactory()
    assert [limited(factory.get("/open")).status_code for _ in range(3)] == [200, 200, 200]
    assert [limited(factory.get("/shut")).status_code for _ in range(2)] == [200, 429]


def test_a_limiter_and_the_settings_to_build_one_are_a_typeerror() -> None:
    # Before, the decorator counted with the limiter and dropped the rate without a word.
    with pytest.raises(TypeError, match=r"either `limiter` or the settings .*\(rate\)"):
        ratelimit("5/minute", limiter=RateLimiter(10, 60))
    with pytest.raises(TypeError, match=r"either `limiter` or the settings .*\(algorithm\)"):
        ratelimit(limiter=RateLimiter(10, 60), algorithm="gcra")


def test_a_ready_policy_and_settings_are_a_typeerror() -> None:
    # Before, the middleware used the policy and dropped the other settings without a word.
    policy = RequestPolicy(rate="5/minute")
    with pytest.raises(TypeError, match=r"either `policy` or the settings .*\(key_func\)"):
        RateLimitMiddleware(FastAPI(), policy=policy, key_func="user")
    assert RateLimitMiddleware(FastAPI(), policy=policy).policy is policy


def test_the_overload_settings_are_overload_policys_parameters() -> None:
    from rust_py_rate_limit.overload import OVERLOAD_SETTINGS, OverloadPolicy
    from rust_py_rate_limit.settings import OverloadSettings
    from rust_py_rate_limit.starlette import OverloadMiddleware

    parameters = inspect.signature(OverloadPolicy).parameters
    assert set(parameters) == set(OverloadSettings.__annotations__) == OVERLOAD_SETTINGS
    with pytest.raises(
        TypeError,
        match=r"OverloadMiddleware\(\) got an unexpected keyword argument 'max_inflight' "
        r"\(did you mean 'max_in_flight'\?\)",
    ):
        OverloadMiddleware(FastAPI(), max_inflight=3)  # type: ignore[call-arg]
    from rust_py_rate_limit.flask import FlaskOverload

    with pytest.raises(TypeError, match=r"FlaskOverload\(\) got an unexpected keyword .*'queue'"):
        FlaskOverload(max_in_flight=2, queu=3)  # type: ignore[call-arg]
