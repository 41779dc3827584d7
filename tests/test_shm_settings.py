"""``storage="shm://..."`` and ``on_full`` through every web integration's settings: FastAPI
and Starlette's ``RateLimitMiddleware`` and ``Limiter``, Django's ``RUST_PY_RATE_LIMIT``
(``STORAGE``, ``ON_FULL``) and Flask's ``RATELIMIT_STORAGE_URI`` and ``RATELIMIT_ON_FULL``.

Each limit here is on a table of one bucket (``capacity=11``: 15 slots), filled by 15
clients: a 16th is refused with ``on_full="reject"`` and admitted with ``"evict"``. The real
multi-process servers are in tests/test_shm_servers.py.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import django_support  # noqa: F401  (configures Django before anything below touches settings)
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory, override_settings
from fastapi import FastAPI
from fastapi.testclient import TestClient
from flask import Flask

from rust_py_rate_limit.django import RateLimitMiddleware as DjangoMiddleware
from rust_py_rate_limit.django import ratelimit
from rust_py_rate_limit.fastapi import Limiter, RateLimitMiddleware
from rust_py_rate_limit.flask import FlaskRateLimiter

FILL = 15  # the slots of the one bucket of capacity=11
CLIENT = "X-Client"
ON_FULL = ["reject", "evict"]
#: The status of the client that finds the table full, by ``on_full``.
NEWCOMER = {"reject": 429, "evict": 200}


@pytest.fixture
def table(tmp_path: Path) -> str:
    """A one-bucket table of the test's own, in a private directory."""
    directory = tmp_path / "shm"
    directory.mkdir(mode=0o700)
    return f"shm://t{uuid.uuid4().hex[:12]}?capacity=11&path={directory}"


def clients(get: Any) -> list[int]:
    """The statuses of 15 clients filling the table, then of a 16th."""
    return [get({CLIENT: f"c{i}"}) for i in range(FILL + 1)]


@pytest.mark.parametrize("on_full", ON_FULL)
def test_starlette_middleware_takes_shm_storage_and_on_full(table: str, on_full: str) -> None:
    app = FastAPI()
    app.add_middleware(
        RateLimitMiddleware,
        rate="2/minute",
        key_func=f"header:{CLIENT}",
        storage=table,
        on_full=on_full,
    )
    app.get("/")(lambda: "ok")
    client = TestClient(app)
    assert clients(lambda h: client.get("/", headers=h).status_code) == [200] * FILL + [
        NEWCOMER[on_full]
    ]


@pytest.mark.parametrize("on_full", ON_FULL)
def test_fastapi_limiter_defaults_take_shm_storage_and_on_full(table: str, on_full: str) -> None:
    limiter = Limiter(key_func=f"header:{CLIENT}", storage=table, on_full=on_full)
    app = FastAPI()

    @app.get("/")
    @limiter.limit("2/minute")
    def index() -> str:
        return "ok"

    client = TestClient(app)
    assert clients(lambda h: client.get("/", headers=h).status_code) == [200] * FILL + [
        NEWCOMER[on_full]
    ]


@pytest.mark.parametrize("on_full", ON_FULL)
def test_django_setting_takes_shm_storage_and_on_full(table: str, on_full: str) -> None:
    setting = {
        "RATE": "2/minute",
        "KEY_FUNC": f"header:{CLIENT}",
        "STORAGE": table,
        "ON_FULL": on_full,
    }
    with override_settings(RUST_PY_RATE_LIMIT=setting):
        client = Client()
        statuses = clients(lambda h: client.get("/plain", headers=h).status_code)
    assert statuses == [200] * FILL + [NEWCOMER[on_full]]


def test_a_django_view_limit_counts_in_the_sites_table(table: str) -> None:
    setting = {"STORAGE": table, "ON_FULL": "evict"}
    with override_settings(RUST_PY_RATE_LIMIT=setting):

        @ratelimit("2/minute", key_func=f"header:{CLIENT}")
        def view(request: HttpRequest) -> HttpResponse:
            return HttpResponse("ok")

    factory = RequestFactory()
    statuses = clients(lambda h: view(factory.get("/", headers=h)).status_code)
    assert statuses == [200] * (FILL + 1), "evicted, as the site's ON_FULL says"


def test_a_django_table_that_cannot_be_opened_is_improperly_configured(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    setting = {"RATE": "2/minute", "STORAGE": f"shm://t?path={missing}"}
    with override_settings(RUST_PY_RATE_LIMIT=setting), pytest.raises(ImproperlyConfigured) as bad:
        DjangoMiddleware(lambda request: None)
    assert str(bad.value).startswith("RUST_PY_RATE_LIMIT['STORAGE'] cannot be opened: ")
    assert str(missing) in str(bad.value)


@pytest.mark.parametrize("on_full", ON_FULL)
def test_flask_config_takes_shm_storage_and_on_full(table: str, on_full: str) -> None:
    app = Flask(__name__)
    app.config.update(
        RATELIMIT_RATE="2/minute",
        RATELIMIT_KEY_FUNC=f"header:{CLIENT}",
        RATELIMIT_STORAGE_URI=table,
        RATELIMIT_ON_FULL=on_full,
    )
    FlaskRateLimiter(app)
    app.get("/")(lambda: "ok")
    client = app.test_client()
    assert clients(lambda h: client.get("/", headers=h).status_code) == [200] * FILL + [
        NEWCOMER[on_full]
    ]


def test_flask_argument_on_full_and_route_limits_share_it(table: str) -> None:
    app = Flask(__name__)
    limiter = FlaskRateLimiter(app, key_func=f"header:{CLIENT}", storage=table, on_full="evict")

    @app.get("/")
    @limiter.limit("2/minute")
    def index() -> str:
        return "ok"

    client = app.test_client()
    assert clients(lambda h: client.get("/", headers=h).status_code) == [200] * (FILL + 1)


@pytest.mark.parametrize(
    ("on_full", "error"),
    [("drop", "must be 'reject' or 'evict'"), (1, "must be 'reject' or 'evict'")],
)
def test_a_bad_on_full_names_the_setting(table: str, on_full: object, error: str) -> None:
    with pytest.raises((TypeError, ValueError), match=f"`on_full` {error}"):
        RateLimitMiddleware(FastAPI(), rate="2/minute", storage=table, on_full=on_full)
    with pytest.raises((TypeError, ValueError), match=f"`on_full` {error}"):
        Limiter(storage=table, on_full=on_full)
    setting = {"RATE": "2/minute", "STORAGE": table, "ON_FULL": on_full}
    with override_settings(RUST_PY_RATE_LIMIT=setting), pytest.raises(ImproperlyConfigured) as bad:
        DjangoMiddleware(lambda request: None)
    assert "RUST_PY_RATE_LIMIT['ON_FULL']" in str(bad.value)
    app = Flask(__name__)
    app.config.update(RATELIMIT_RATE="2/minute", RATELIMIT_ON_FULL=on_full)
    with pytest.raises((TypeError, ValueError), match=f"RATELIMIT_ON_FULL.*{error}"):
        FlaskRateLimiter(app)
    with pytest.raises((TypeError, ValueError), match=f"`on_full`.*{error}"):
        FlaskRateLimiter(rate="2/minute", on_full=on_full)  # type: ignore[arg-type]


def test_memory_evicts_too_when_max_keys_is_reached() -> None:
    RateLimitMiddleware(FastAPI(), rate="2/minute", max_keys=1, on_full="evict")
    setting = {"RATE": "2/minute", "MAX_KEYS": 1, "ON_FULL": "evict"}
    with override_settings(RUST_PY_RATE_LIMIT=setting):
        DjangoMiddleware(lambda request: None)
    app = Flask(__name__)
    app.config.update(RATELIMIT_RATE="2/minute", RATELIMIT_ON_FULL="evict")
    FlaskRateLimiter(app)


SEVERAL = "3/minute; 2/hour"


def test_several_rates_on_shm_through_every_integration_count_in_one_table(table: str) -> None:
    """Two apps on one table stand for two worker processes: each client's two requests in all
    are admitted (the hour's 2 binds), the third is refused wherever it lands."""
    fastapi_apps = []
    for _ in range(2):
        app = FastAPI()
        app.add_middleware(
            RateLimitMiddleware, rate=SEVERAL, key_func=f"header:{CLIENT}", storage=table
        )
        app.get("/")(lambda: "ok")
        fastapi_apps.append(TestClient(app))
    statuses = [fastapi_apps[i % 2].get("/", headers={CLIENT: "a"}).status_code for i in range(3)]
    assert statuses == [200, 200, 429]

    setting = {"RATE": SEVERAL, "KEY_FUNC": f"header:{CLIENT}", "STORAGE": table}
    with override_settings(RUST_PY_RATE_LIMIT=setting):
        client = Client()
        django = [client.get("/plain", headers={CLIENT: "b"}).status_code for _ in range(3)]
    assert django == [200, 200, 429]

    flask_clients = []
    for _ in range(2):
        flask_app = Flask(__name__)
        flask_app.config.update(
            RATELIMIT_RATE=SEVERAL,
            RATELIMIT_KEY_FUNC=f"header:{CLIENT}",
            RATELIMIT_STORAGE_URI=table,
        )
        FlaskRateLimiter(flask_app)
        flask_app.get("/")(lambda: "ok")
        flask_clients.append(flask_app.test_client())
    flask = [flask_clients[i % 2].get("/", headers={CLIENT: "c"}).status_code for i in range(3)]
    assert flask == [200, 200, 429]
