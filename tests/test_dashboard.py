"""The dashboard as an ASGI app under FastAPI and as a WSGI app under Flask: the page, its
``api/state``, the history it samples, keys escaped or hidden, ``auth``, bad settings."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from flask import Flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from rust_py_rate_limit import ConcurrencyLimiter, ManualClock, RateLimiter, TokenBucket
from rust_py_rate_limit.dashboard import Dashboard


def refuse(limiter: RateLimiter, key: str, times: int) -> None:
    limiter.allow(key)
    for _ in range(times):
        limiter.allow(key)


def stepping_clock(dashboard: Dashboard, step: float = 1.0) -> None:
    """Each sample of the dashboard's history one ``step`` after the last."""
    ticks = itertools.count()
    dashboard._now = lambda: next(ticks) * step


def asgi_client(dashboard: Dashboard) -> TestClient:
    app = FastAPI()
    app.mount("/limits", dashboard)
    return TestClient(app)


def test_the_page_and_its_state_under_fastapi(clock: ManualClock) -> None:
    api = RateLimiter(1, 3600, name="api", clock=clock)
    pool = ConcurrencyLimiter(2, name="db")
    outbound = TokenBucket(capacity=5, increment=1, period_secs=1, clock=clock)
    dashboard = Dashboard(api, pool, outbound)
    stepping_clock(dashboard)
    client = asgi_client(dashboard)
    moved = client.get("/limits", follow_redirects=False)
    assert moved.status_code == 307 and moved.headers["location"].endswith("/limits/")
    refuse(api, "ip:203.0.113.7", 3)
    with pool.acquire(), pool.acquire():
        assert pool.try_acquire() is None  # refused: no permit free
        first = client.get("/limits/api/state").json()
    refuse(api, "ip:198.51.100.2", 1)
    state = client.get("/limits/api/state").json()
    names = [limiter["name"] for limiter in state["limiters"]]
    assert names == ["api", "db", outbound.name]
    rate = state["limiters"][0]
    assert (rate["allowed"], rate["blocked"], rate["active_keys"]) == (2, 4, 2)
    assert rate["top_blocked"] == [["ip:203.0.113.7", 3], ["ip:198.51.100.2", 1]]
    # Two samples a second apart: between them one admission and one refusal.
    assert rate["history"]["allowed"] == [[0.0, 1.0]]
    assert rate["history"]["blocked"] == [[0.0, 1.0]]
    assert first["limiters"][1]["in_flight"] == 2
    assert state["limiters"][1]["history"]["in_flight"] == [[-1.0, 2.0], [0.0, 0.0]]
    assert state["limiters"][1]["refused"] == {
        "no_permit": 1,
        "queue_full": 0,
        "shed": 0,
        "max_keys": 0,
        "timed_out": 0,
    }
    assert state["limiters"][2]["remaining"] == 5
    page = client.get("/limits/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.text.count("<svg") == 2, "a chart for the rate limiter and the pool"
    assert "ip:203.0.113.7" in page.text and 'fetch("api/state"' in page.text
    assert "<tr><th>refused, no permit free</th><td>1</td></tr>" in page.text
    assert "http://" not in page.text and "https://" not in page.text, "nothing from outside"
    assert client.post("/limits/api/state").status_code == 405
    assert client.get("/limits/nothing").status_code == 404


def test_keys_are_escaped_hashed_or_hidden() -> None:
    limiter = RateLimiter(1, 3600, name="web")
    refuse(limiter, "<script>alert(1)</script>", 2)
    plain = Dashboard(limiter).state()["html"]
    assert "<script>alert" not in plain and "&lt;script&gt;alert(1)&lt;/script&gt;" in plain
    hashed = Dashboard(limiter, metrics_keys="hash", salt="s").state()
    label = hashed["limiters"][0]["top_blocked"][0][0]
    assert len(label) == 16 and "script" not in hashed["html"]
    hidden = Dashboard(limiter, metrics_keys="none").state()
    assert hidden["limiters"][0]["top_blocked"] == [] and "script" not in hidden["html"]


def test_auth_refuses_with_403_and_a_redis_password_never_shows() -> None:
    limiter = RateLimiter(1, 60, name="x")
    seen: list[Any] = []

    def auth(request: Any) -> bool:
        seen.append(request)
        return dict(request.get("headers", [])).get(b"x-admin") == b"yes"

    client = asgi_client(Dashboard(limiter, auth=auth))
    assert client.get("/limits/").status_code == 403
    assert client.get("/limits/", headers={"x-admin": "yes"}).status_code == 200
    assert seen and seen[0]["type"] == "http", "auth is given the ASGI scope"
    on_redis = RateLimiter(
        1, 60, storage="redis://:s3cret@127.0.0.1:1/0", timeout=0.01, on_storage_error="allow"
    )
    assert on_redis.allow("k"), "nothing listens on port 1: the policy answers"
    html = Dashboard(on_redis).state()["html"]
    assert "s3cret" not in html
    assert "no: outage under way" in html
    assert RateLimiter(1, 60).storage_healthy is None, "in process"


@pytest.mark.parametrize(
    "url",
    [
        "redis://user:s3cret@127.0.0.1:1/0",
        "redis://:s3cret@127.0.0.1:1/0?socket_timeout=0.01",
        "rediss://:s3cret@127.0.0.1:1",
        "valkey://default:s3cret@127.0.0.1:1/2",
        "redis+cluster://:s3cret@127.0.0.1:1,127.0.0.1:2",
        "rediss+cluster://admin:s3cret@127.0.0.1:1,127.0.0.1:2?socket_connect_timeout=1",
        "redis://:s3cr%40et@127.0.0.1:1/0",  # an '@' in the password, percent-encoded
        "redis://:s3cr@et@127.0.0.1:1/0",  # or not: the host is after the last '@'
    ],
)
def test_no_form_of_redis_url_shows_its_password_in_the_page_or_the_json(url: str) -> None:
    limiter = RateLimiter(1, 60, storage=url, on_storage_error="allow", name="r")
    client = asgi_client(Dashboard(limiter))
    page = client.get("/limits/").text
    state = client.get("/limits/api/state").text
    assert "<svg" in page and '"name": "r"' in state
    for shown in (page, state, repr(limiter)):
        assert "s3cr" not in shown and "***@127.0.0.1:" in shown


def test_hashed_or_hidden_keys_leave_no_trace_of_the_key() -> None:
    limiter = RateLimiter(1, 3600, name="web")
    key = "user:quinn@example.org"  # no run of hex digits: a hash label cannot contain it
    refuse(limiter, key, 3)
    for metrics_keys in ("hash", "none"):
        dashboard = Dashboard(limiter, metrics_keys=metrics_keys)
        client = asgi_client(dashboard)
        shown = [client.get("/limits/").text, client.get("/limits/api/state").text]
        shown += [repr(dashboard), repr(dashboard.wsgi), str(dashboard.state())]
        for text in shown:
            assert "quinn" not in text and "example" not in text, (metrics_keys, text)


def test_keys_left_out_are_said_to_be_hidden_not_absent() -> None:
    limiter = RateLimiter(1, 3600, name="web")
    refuse(limiter, "ip:1", 2)
    hidden = Dashboard(limiter, metrics_keys="none").state()["html"]
    assert "<li>none</li>" not in hidden and "hidden (metrics_keys=&quot;none&quot;)" in hidden
    unlisted = Dashboard(limiter, top=0).state()["html"]
    assert "<li>none</li>" not in unlisted and "not listed (top=0)" in unlisted
    assert "<li>none</li>" in Dashboard(RateLimiter(1, 1)).state()["html"], "none refused yet"


def test_the_card_says_when_the_fallback_is_deciding() -> None:
    limiter = RateLimiter(1, 60, storage="redis://127.0.0.1:1/0", fallback="memory", name="r")
    assert "<tr><th>fallback</th><td>memory</td></tr>" in Dashboard(limiter).state()["html"]
    assert limiter.allow("k") and not limiter.allow("k"), "nothing on port 1: memory decides"
    state = Dashboard(limiter).state()
    assert "<tr><th>fallback</th><td>memory, deciding now</td></tr>" in state["html"]
    assert state["limiters"][0]["fallback_active"] is True


def test_the_same_dashboard_as_wsgi_under_flask() -> None:
    limiter = RateLimiter(1, 3600, name="login")
    refuse(limiter, "user:7", 2)
    dashboard = Dashboard(limiter, auth=lambda environ: "HTTP_X_ADMIN" in environ)
    app = Flask(__name__)
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/limits": dashboard.wsgi})  # type: ignore[method-assign]
    client = app.test_client()
    assert client.get("/limits/").status_code == 403
    state = client.get("/limits/api/state", headers={"X-Admin": "1"})
    assert state.status_code == 200
    assert state.get_json()["limiters"][0]["top_blocked"] == [["user:7", 2]]
    page = client.get("/limits/", headers={"X-Admin": "1"})
    assert b"<svg" in page.data and b"user:7" in page.data
    moved = client.get("/limits", headers={"X-Admin": "1"})
    assert moved.status_code == 307 and moved.headers["location"].endswith("/limits/")


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "named"),
    [
        ((), {}, ValueError, "at least one limiter"),
        (("api",), {}, TypeError, "str"),
        ((RateLimiter(1, 1),), {"auth": "yes"}, TypeError, r"`auth` .*str \('yes'\)"),
        ((RateLimiter(1, 1),), {"top": 101}, ValueError, "`top`"),
        ((RateLimiter(1, 1),), {"top": True}, TypeError, "`top`"),
        ((RateLimiter(1, 1),), {"metrics_keys": "all"}, ValueError, "`metrics_keys`"),
        ((RateLimiter(1, 1),), {"title": ""}, ValueError, "`title`"),
        ((RateLimiter(1, 1),), {"title": 5}, TypeError, r"`title` must be a str, not int \(5\)"),
        ((RateLimiter(1, 1),), {"title": None}, TypeError, r"`title` .*NoneType"),
        ((RateLimiter(1, 1),), {"metrics_keys": "hash", "salt": 7}, TypeError, r"`salt` .*\(7\)"),
    ],
)
def test_bad_settings_are_refused_by_name(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception], named: str
) -> None:
    with pytest.raises(error, match=named):
        Dashboard(*args, **kwargs)


def test_the_same_dashboard_as_a_django_view() -> None:
    import sys
    import types

    import django_support  # noqa: F401  (configures Django)
    from django.test import Client, override_settings
    from django.urls import re_path

    limiter = RateLimiter(1, 3600, name="signup")
    refuse(limiter, "ip:192.0.2.1", 3)
    dashboard = Dashboard(limiter, auth=lambda meta: meta.get("HTTP_X_ADMIN") == "1")
    urls = types.ModuleType("dashboard_urls")
    urls.urlpatterns = [re_path(r"^limits/(?P<path>.*)$", dashboard.django_view)]  # type: ignore[attr-defined]
    sys.modules["dashboard_urls"] = urls
    with override_settings(ROOT_URLCONF="dashboard_urls", MIDDLEWARE=[]):
        client = Client()
        assert client.get("/limits/").status_code == 403
        state = client.get("/limits/api/state", HTTP_X_ADMIN="1")
        assert state.status_code == 200 and state["content-type"] == "application/json"
        assert state.json()["limiters"][0]["top_blocked"] == [["ip:192.0.2.1", 3]]
        page = client.get("/limits/", HTTP_X_ADMIN="1")
        assert b"<svg" in page.content and b"ip:192.0.2.1" in page.content


def test_the_bare_asgi_app_redirects_answers_head_and_lifespan() -> None:
    dashboard = Dashboard(RateLimiter(1, 60, name="bare"))
    sent: list[dict[str, Any]] = []

    async def call(scope: dict[str, Any], messages: list[dict[str, Any]]) -> None:
        incoming = iter(messages)

        async def receive() -> dict[str, Any]:
            return next(incoming)

        async def send(message: Any) -> None:
            sent.append(dict(message))

        await dashboard(scope, receive, send)

    import asyncio

    http = {"type": "http", "method": "GET", "root_path": "/limits", "path": "/limits"}
    asyncio.run(call(http, []))
    assert sent[0]["status"] == 307
    assert (b"location", b"/limits/") in sent[0]["headers"]
    sent.clear()
    asyncio.run(call({**http, "method": "HEAD", "path": "/limits/api/state"}, []))
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"", "HEAD: headers, no body"
    sent.clear()
    lifespan = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    asyncio.run(call({"type": "lifespan"}, lifespan))
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    environ = {"PATH_INFO": "/api/state", "REQUEST_METHOD": "DELETE", "SCRIPT_NAME": "/limits"}
    statuses: list[str] = []
    dashboard.wsgi(environ, lambda status, headers: statuses.append(status))
    assert statuses == ["405 Method Not Allowed"]
