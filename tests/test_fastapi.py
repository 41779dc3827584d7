"""The FastAPI / Starlette integration through the frameworks' TestClient.

No ``from __future__ import annotations``: FastAPI must read the annotations of endpoints
defined inside the test functions, which refer to local names.
"""

import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from rust_py_rate_limit import Decision, ManualClock, RateLimiter
from rust_py_rate_limit.fastapi import (
    Limiter,
    RateLimit,
    RateLimitMiddleware,
    RateLimitRefused,
    rate_limit_refused_handler,
)
from rust_py_rate_limit.starlette import RateLimitMiddleware as StarletteMiddleware

X_NAMES = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")
IETF_NAMES = ("ratelimit-policy", "ratelimit")
ALL_NAMES = (*X_NAMES, *IETF_NAMES, "retry-after")


def app_with(clock: ManualClock | None = None, **settings: Any) -> FastAPI:
    """An app with the middleware and a few plain routes."""
    app = FastAPI()
    settings.setdefault("limit", 3)
    settings.setdefault("window_seconds", 60)
    app.add_middleware(RateLimitMiddleware, clock=clock, **settings)

    @app.get("/")
    async def index() -> dict[str, str]:
        return {"hello": "world"}

    @app.get("/sync")
    def sync() -> dict[str, str]:
        return {"sync": "yes"}

    @app.get("/static/app.js")
    def asset() -> PlainTextResponse:
        return PlainTextResponse("js")

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"ok": "yes"}

    @app.post("/upload")
    def upload() -> dict[str, str]:
        return {"stored": "yes"}

    @app.options("/")
    def options() -> dict[str, str]:
        return {}

    return app


def limit_headers(response: Any) -> dict[str, str]:
    return {name: response.headers[name] for name in ALL_NAMES if name in response.headers}


# --- the middleware ---------------------------------------------------------------------------


def test_admitted_responses_carry_decreasing_x_ratelimit_headers(clock: ManualClock) -> None:
    client = TestClient(app_with(clock))
    seen = [limit_headers(client.get("/")) for _ in range(3)]
    assert seen == [
        {"x-ratelimit-limit": "3", "x-ratelimit-remaining": str(r), "x-ratelimit-reset": "60"}
        for r in (2, 1, 0)
    ]


@pytest.mark.parametrize(
    ("style", "expected"),
    [
        ("ietf", {"ratelimit-policy": '"api";q=3;w=60', "ratelimit": '"api";r=2;t=60'}),
        (
            "both",
            {
                "x-ratelimit-limit": "3",
                "x-ratelimit-remaining": "2",
                "x-ratelimit-reset": "60",
                "ratelimit-policy": '"api";q=3;w=60',
                "ratelimit": '"api";r=2;t=60',
            },
        ),
        (None, {}),
    ],
)
def test_each_header_style(clock: ManualClock, style: Any, expected: dict[str, str]) -> None:
    client = TestClient(app_with(clock, headers=style, name="api"))
    response = client.get("/")
    assert response.status_code == 200
    assert limit_headers(response) == expected
    assert response.json() == {"hello": "world"}


def test_refused_request_gets_429_with_body_and_retry_after(clock: ManualClock) -> None:
    client = TestClient(app_with(clock))
    assert [client.get("/").status_code for _ in range(3)] == [200, 200, 200]
    clock.advance(15)
    response = client.get("/")
    assert response.status_code == 429
    assert response.json() == {"detail": "Too many requests"}
    assert response.headers["content-type"] == "application/json"
    assert limit_headers(response) == {
        "x-ratelimit-limit": "3",
        "x-ratelimit-remaining": "0",
        "x-ratelimit-reset": "45",
        "retry-after": "45",
    }


def test_retry_after_is_sent_even_without_rate_limit_headers(clock: ManualClock) -> None:
    client = TestClient(app_with(clock, limit=1, headers=None))
    assert limit_headers(client.get("/")) == {}
    assert limit_headers(client.get("/")) == {"retry-after": "60"}


def test_custom_status_and_body(clock: ManualClock) -> None:
    client = TestClient(app_with(clock, limit=1, status_code=503, body="slow down"))
    client.get("/")
    response = client.get("/")
    assert response.status_code == 503
    assert response.text == "slow down"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["retry-after"] == "60"


def test_sync_and_async_endpoints_share_the_global_count(clock: ManualClock) -> None:
    client = TestClient(app_with(clock))
    assert client.get("/").json() == {"hello": "world"}
    assert client.get("/sync").json() == {"sync": "yes"}
    assert client.get("/sync").headers["x-ratelimit-remaining"] == "0"
    assert client.get("/").status_code == 429


def test_a_limiter_instance_with_a_manual_clock_admits_again_after_the_window() -> None:
    clock = ManualClock()
    limiter = RateLimiter(limit=2, window_seconds=10, clock=clock)
    client = TestClient(app_with(limit=None, window_seconds=None, limiter=limiter))
    assert [client.get("/").status_code for _ in range(3)] == [200, 200, 429]
    clock.advance(9.5)
    assert client.get("/").status_code == 429
    clock.advance(0.5)
    assert client.get("/").status_code == 200
    assert limiter.stats()["blocked"] == 2


def test_rate_string_and_algorithm(clock: ManualClock) -> None:
    client = TestClient(
        app_with(clock, limit=None, window_seconds=None, rate="2/second", algorithm="gcra")
    )
    assert [client.get("/").status_code for _ in range(3)] == [200, 200, 429]
    clock.advance(0.5)
    assert client.get("/").status_code == 200


def test_exempt_paths_exact_and_prefix_are_not_counted_and_get_no_headers(
    clock: ManualClock,
) -> None:
    client = TestClient(app_with(clock, limit=1, exempt_paths=["/health", "/static/*"]))
    for _ in range(3):
        assert limit_headers(client.get("/health")) == {}
        assert client.get("/static/app.js").text == "js"
    assert client.get("/").headers["x-ratelimit-remaining"] == "0"
    assert client.get("/").status_code == 429
    assert client.get("/health").status_code == 200


def test_exempt_methods(clock: ManualClock) -> None:
    client = TestClient(app_with(clock, limit=1, exempt_methods=["options"]))
    for _ in range(3):
        response = client.options("/")
        assert response.status_code == 200
        assert limit_headers(response) == {}
    assert client.get("/").status_code == 200
    assert client.get("/").status_code == 429


def test_integer_cost(clock: ManualClock) -> None:
    client = TestClient(app_with(clock, limit=5, cost=2))
    assert client.get("/").headers["x-ratelimit-remaining"] == "3"
    assert client.get("/").headers["x-ratelimit-remaining"] == "1"
    assert client.get("/").status_code == 429


def test_cost_callable_of_the_request(clock: ManualClock) -> None:
    seen: list[type] = []

    def cost(request: Request) -> int:
        seen.append(type(request))
        return 4 if request.method == "POST" else 1

    client = TestClient(app_with(clock, limit=5, cost=cost))
    assert client.post("/upload").headers["x-ratelimit-remaining"] == "1"
    assert client.post("/upload").status_code == 429  # 4 more do not fit
    assert client.get("/").headers["x-ratelimit-remaining"] == "0"
    assert seen == [Request] * 3


def test_dynamic_per_tenant_limit(clock: ManualClock) -> None:
    tiers = {"free": "2/minute", "pro": "5/minute"}

    def tier(request: Request) -> str | None:
        return tiers.get(request.headers.get("X-Tenant", ""))

    client = TestClient(app_with(clock, limit=1, key_func="header:X-Tenant", dynamic_limit=tier))

    def statuses(tenant: str, n: int) -> list[int]:
        return [client.get("/", headers={"X-Tenant": tenant}).status_code for _ in range(n)]

    assert statuses("free", 3) == [200, 200, 429]
    assert statuses("pro", 6) == [200] * 5 + [429]
    assert statuses("other", 2) == [200, 429]  # no tier: the default limit
    response = client.get("/", headers={"X-Tenant": "pro"})
    assert response.headers["x-ratelimit-limit"] == "5"


def test_key_func_receives_a_starlette_request(clock: ManualClock) -> None:
    seen: list[Request] = []

    def key(request: Request) -> str:
        seen.append(request)
        return request.query_params.get("user", "anon")

    client = TestClient(app_with(clock, limit=1, key_func=key))
    assert client.get("/?user=a").status_code == 200
    assert client.get("/?user=b").status_code == 200
    assert client.get("/?user=a").status_code == 429
    assert all(isinstance(r, Request) for r in seen) and len(seen) == 3


def from_peer(app: ASGIApp, host: str) -> ASGIApp:
    """``app`` as reached from the socket peer ``host`` (``TestClient(client=...)`` does this
    from Starlette 0.44 on; this works on every Starlette the package supports)."""

    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        await app({**scope, "client": (host, 1234)}, receive, send)

    return asgi


def test_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(clock: ManualClock) -> None:
    app = app_with(clock, limit=1, trusted_proxies=["10.0.0.0/8"])
    client = TestClient(from_peer(app, "203.0.113.9"))
    assert client.get("/", headers={"X-Forwarded-For": "198.51.100.1"}).status_code == 200
    # a new forged address does not buy a new count: the key is the peer
    assert client.get("/", headers={"X-Forwarded-For": "198.51.100.2"}).status_code == 429


def test_forwarded_for_from_a_trusted_proxy_is_the_client(clock: ManualClock) -> None:
    app = app_with(clock, limit=1, trusted_proxies=["10.0.0.0/8"])
    proxy = TestClient(from_peer(app, "10.0.0.1"))
    assert proxy.get("/", headers={"X-Forwarded-For": "198.51.100.1"}).status_code == 200
    assert proxy.get("/", headers={"X-Forwarded-For": "198.51.100.2"}).status_code == 200
    # the client's own forged entry left of the proxy's is not read
    forged = {"X-Forwarded-For": "1.2.3.4, 198.51.100.1"}
    assert proxy.get("/", headers=forged).status_code == 429


def test_websocket_and_lifespan_pass_through(clock: ManualClock) -> None:
    started: list[str] = []

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        started.append("up")
        yield
        started.append("down")

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(await websocket.receive_text())
        await websocket.close()

    async def home(request: Request) -> PlainTextResponse:
        return PlainTextResponse("home")

    app = Starlette(
        routes=[Route("/", home), WebSocketRoute("/ws", echo)],
        lifespan=lifespan,
    )
    app.add_middleware(StarletteMiddleware, limit=1, window_seconds=60, clock=clock)
    with TestClient(app) as client:
        assert started == ["up"]
        for text in ("a", "b", "c"):
            with client.websocket_connect("/ws") as ws:
                ws.send_text(text)
                assert ws.receive_text() == text
        assert client.get("/").text == "home"
        assert client.get("/").status_code == 429
    assert started == ["up", "down"]


def test_on_blocked_sync_builds_the_refusal_and_gets_the_headers(clock: ManualClock) -> None:
    def on_blocked(request: Request, decision: Decision) -> Response:
        return JSONResponse({"path": request.url.path, "wait": decision.retry_after}, 418)

    client = TestClient(app_with(clock, limit=1, on_blocked=on_blocked))
    client.get("/")
    response = client.get("/")
    assert response.status_code == 418
    assert response.json() == {"path": "/", "wait": 60.0}
    assert response.headers["retry-after"] == "60"
    assert response.headers["x-ratelimit-remaining"] == "0"


def test_on_blocked_async_and_its_own_headers_win(clock: ManualClock) -> None:
    async def on_blocked(request: Request, decision: Decision) -> Response:
        return PlainTextResponse("later", 429, headers={"Retry-After": "3600"})

    client = TestClient(app_with(clock, limit=1, on_blocked=on_blocked))
    client.get("/")
    response = client.get("/")
    assert (response.status_code, response.text) == (429, "later")
    assert response.headers.get_list("retry-after") == ["3600"]


def test_on_blocked_must_return_a_response(clock: ManualClock) -> None:
    client = TestClient(app_with(clock, limit=1, on_blocked=lambda request, decision: "no"))
    client.get("/")
    with pytest.raises(TypeError, match="on_blocked` must return a starlette Response"):
        client.get("/")


def test_plain_starlette_app(clock: ManualClock) -> None:
    async def home(request: Request) -> PlainTextResponse:
        return PlainTextResponse("home", headers={"X-Own": "1"})

    app = Starlette(routes=[Route("/", home)])
    app.add_middleware(StarletteMiddleware, rate="2/minute", clock=clock)
    client = TestClient(app)
    response = client.get("/")
    assert response.headers["x-own"] == "1"
    assert response.headers["x-ratelimit-remaining"] == "1"
    client.get("/")
    assert client.get("/").status_code == 429


def test_the_starlette_module_does_not_need_fastapi_and_the_package_imports_neither() -> None:
    code = (
        "import sys; sys.modules['fastapi'] = None\n"
        "import rust_py_rate_limit\n"
        "assert 'starlette' not in sys.modules, 'the package imported starlette'\n"
        "from rust_py_rate_limit.starlette import RateLimitMiddleware\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd="/", timeout=60
    )
    assert result.stdout.strip() == "ok", result.stderr


# --- per-route limits -------------------------------------------------------------------------


def route_app(clock: ManualClock, global_limit: int = 5) -> FastAPI:
    app = FastAPI()
    app.add_middleware(RateLimitMiddleware, limit=global_limit, window_seconds=60, clock=clock)
    limiter = Limiter(clock=clock)

    @app.get("/search", dependencies=[Depends(RateLimit("2/minute", clock=clock))])
    async def search(q: str = "") -> dict[str, str]:
        return {"q": q}

    @app.get("/annotated")
    def annotated(
        _: Annotated[None, Depends(RateLimit("1/minute", clock=clock, headers="ietf"))],
    ) -> dict[str, str]:
        return {"sync": "yes"}

    @app.get("/login")
    @limiter.limit("2/minute")
    async def login(request: Request) -> dict[str, str]:
        return {"user": request.query_params.get("u", "")}

    @app.get("/report")
    @limiter.limit("1/minute")
    def report(n: int = 1) -> dict[str, int]:
        return {"n": n}

    @app.get("/plain")
    def plain() -> str:
        return "plain"

    return app


def test_a_route_limit_replaces_the_default_limit_on_its_route(clock: ManualClock) -> None:
    client = TestClient(route_app(clock))
    first = client.get("/search", params={"q": "a"})
    assert first.json() == {"q": "a"}
    # the route's own limit is the one reported on the route
    assert limit_headers(first) == {
        "x-ratelimit-limit": "2",
        "x-ratelimit-remaining": "1",
        "x-ratelimit-reset": "60",
    }
    assert client.get("/search").status_code == 200
    refused = client.get("/search")
    assert refused.status_code == 429
    assert refused.json() == {"detail": "Too many requests"}
    assert limit_headers(refused) == {
        "x-ratelimit-limit": "2",
        "x-ratelimit-remaining": "0",
        "x-ratelimit-reset": "60",
        "retry-after": "60",
    }
    # the default limit (5) counted none of them: the decorated and dependency routes too
    assert client.get("/login").headers["x-ratelimit-limit"] == "2"
    assert client.get("/report").headers["x-ratelimit-limit"] == "1"
    assert client.get("/annotated").headers["ratelimit-policy"] == '"default";q=1;w=60'
    plain = [client.get("/plain") for _ in range(6)]
    assert [r.status_code for r in plain] == [200] * 5 + [429]
    assert plain[0].headers["x-ratelimit-remaining"] == "4"


def test_override_defaults_false_counts_a_route_against_both(clock: ManualClock) -> None:
    app = FastAPI()
    app.add_middleware(RateLimitMiddleware, limit=3, window_seconds=60, clock=clock)
    limiter = Limiter(clock=clock)
    both = RateLimit("10/minute", clock=clock, override_defaults=False)

    @app.get("/dep", dependencies=[Depends(both)])
    def dep() -> str:
        return "dep"

    @app.get("/deco")
    @limiter.limit("10/minute", override_defaults=False)
    def deco() -> str:
        return "deco"

    @app.get("/own")
    @limiter.limit("10/minute")
    def own() -> str:
        return "own"

    client = TestClient(app)
    statuses = [client.get(p).status_code for p in ("/dep", "/deco", "/dep", "/deco", "/own")]
    # the default limit of 3 counted /dep and /deco (stacked), never /own
    assert statuses == [200, 200, 200, 429, 200]
    assert client.get("/own").status_code == 200


def test_a_route_limit_admits_again_after_its_window(clock: ManualClock) -> None:
    client = TestClient(route_app(clock, global_limit=100))
    assert [client.get("/search").status_code for _ in range(3)] == [200, 200, 429]
    clock.advance(60)
    assert client.get("/search").status_code == 200


def test_annotated_dependency_on_a_sync_endpoint(clock: ManualClock) -> None:
    client = TestClient(route_app(clock))
    response = client.get("/annotated")
    assert response.json() == {"sync": "yes"}
    assert response.headers["ratelimit"] == '"default";r=0;t=60'
    assert "x-ratelimit-limit" not in response.headers  # the route's headers, not both
    refused = client.get("/annotated")
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "60"


def test_decorator_on_async_endpoint_with_request(clock: ManualClock) -> None:
    client = TestClient(route_app(clock, global_limit=100))
    response = client.get("/login", params={"u": "ada"})
    assert response.json() == {"user": "ada"}
    assert response.headers["x-ratelimit-limit"] == "2"
    assert response.headers["x-ratelimit-remaining"] == "1"
    client.get("/login")
    refused = client.get("/login")
    assert refused.status_code == 429
    assert refused.json() == {"detail": "Too many requests"}
    assert refused.headers["retry-after"] == "60"


def test_decorator_on_sync_endpoint_without_request_keeps_its_parameters(
    clock: ManualClock,
) -> None:
    app = route_app(clock, global_limit=100)
    client = TestClient(app)
    assert client.get("/report", params={"n": 7}).json() == {"n": 7}
    assert client.get("/report", params={"n": "x"}).status_code == 422  # still validated
    assert client.get("/report").status_code == 429
    parameters = app.openapi()["paths"]["/report"]["get"]["parameters"]
    assert [p["name"] for p in parameters] == ["n"]  # the added request/response are hidden


def test_per_route_limits_are_apart_from_each_other(clock: ManualClock) -> None:
    shared = RateLimit("1/minute", clock=clock)
    router = APIRouter(dependencies=[Depends(shared)])

    @router.get("/a")
    def a() -> str:
        return "a"

    @router.get("/b")
    def b() -> str:
        return "b"

    app = FastAPI()
    app.include_router(router)
    client = TestClient(app)
    assert [client.get(p).status_code for p in ("/a", "/b", "/a", "/b")] == [200, 200, 429, 429]
    # one limiter, two keys: one per route
    assert shared.limiter.stats()["active_keys"] == 2


def test_scope_shares_one_count_across_routes(clock: ManualClock) -> None:
    app = FastAPI()
    group = RateLimit("2/minute", clock=clock, scope="exports")

    @app.get("/csv", dependencies=[Depends(group)])
    def csv() -> str:
        return "csv"

    @app.get("/xlsx", dependencies=[Depends(group)])
    def xlsx() -> str:
        return "xlsx"

    client = TestClient(app)
    assert [client.get(p).status_code for p in ("/csv", "/xlsx", "/csv")] == [200, 200, 429]


def test_route_dependency_options(clock: ManualClock) -> None:
    app = FastAPI()
    costly = RateLimit(
        "10/minute",
        key_func="header:X-API-Key",
        clock=clock,
        cost=lambda request: int(request.query_params.get("rows", "1")),
        exempt_methods=["HEAD"],
    )

    @app.api_route("/rows", methods=["GET", "HEAD"], dependencies=[Depends(costly)])
    def rows() -> str:
        return "ok"

    client = TestClient(app)
    key = {"X-API-Key": "k1"}
    assert client.get("/rows?rows=6", headers=key).headers["x-ratelimit-remaining"] == "4"
    assert client.get("/rows?rows=6", headers=key).status_code == 429
    assert client.get("/rows?rows=6", headers={"X-API-Key": "k2"}).status_code == 200
    head = client.head("/rows", headers=key)
    assert head.status_code == 200 and "x-ratelimit-limit" not in head.headers


def test_dependency_with_a_limiter_instance_and_dynamic_limit(clock: ManualClock) -> None:
    app = FastAPI()
    limiter = RateLimiter(limit=1, window_seconds=60, clock=clock)

    def tier(request: Request) -> str | None:
        return "3/minute" if request.headers.get("X-Tenant") == "pro" else None

    @app.get("/", dependencies=[Depends(RateLimit(limiter, dynamic_limit=tier))])
    async def index() -> str:
        return "ok"

    client = TestClient(app)
    pro = {"X-Tenant": "pro"}
    assert [client.get("/", headers=pro).status_code for _ in range(4)] == [200] * 3 + [429]
    assert [client.get("/").status_code for _ in range(2)] == [200, 429]
    assert limiter.stats()["total_checks"] == 2


def test_decorator_adds_headers_to_a_returned_response_and_uses_the_response_parameter(
    clock: ManualClock,
) -> None:
    app = FastAPI()
    limiter = Limiter(clock=clock, headers="ietf", name="pages")

    @app.get("/page")
    @limiter.limit("3/minute")
    async def page(request: Request) -> Response:
        return PlainTextResponse("page")

    @app.get("/data")
    @limiter.limit("3/minute", headers="x-ratelimit")
    def data(response: Response) -> dict[str, int]:
        response.headers["X-Own"] = "1"
        return {"x": 1}

    client = TestClient(app)
    page_response = client.get("/page")
    assert page_response.text == "page"
    assert page_response.headers["ratelimit-policy"] == '"pages";q=3;w=60'
    data_response = client.get("/data")
    assert data_response.headers["x-own"] == "1"
    assert data_response.headers["x-ratelimit-remaining"] == "2"


def test_decorator_on_blocked_sync_and_async(clock: ManualClock) -> None:
    async def later(request: Request, decision: Decision) -> Response:
        return PlainTextResponse(f"wait {decision.retry_after:.0f}", 429)

    limiter = Limiter(clock=clock, on_blocked=later)
    app = FastAPI()

    @app.get("/async")
    @limiter.limit("1/minute")
    async def async_endpoint() -> str:
        return "a"

    @app.get("/sync")
    @limiter.limit("1/minute")
    def sync_endpoint() -> str:
        return "s"

    @app.get("/own")
    @limiter.limit("1/minute", on_blocked=lambda r, d: PlainTextResponse("own", 503))
    def own() -> str:
        return "o"

    client = TestClient(app)
    for path in ("/async", "/sync"):
        assert client.get(path).status_code == 200
        refused = client.get(path)
        assert (refused.status_code, refused.text) == (429, "wait 60")
        assert refused.headers["retry-after"] == "60"
    client.get("/own")
    assert (client.get("/own").status_code, client.get("/own").text) == (503, "own")


def test_decorator_keys_by_the_limiters_key_func(clock: ManualClock) -> None:
    limiter = Limiter(key_func="header:X-API-Key", clock=clock)
    app = FastAPI()

    @app.get("/")
    @limiter.limit("1/minute")
    async def index(request: Request) -> str:
        return "ok"

    @app.get("/by-user")
    @limiter.limit("1/minute", key_func=lambda request: request.query_params["user"])
    async def by_user(request: Request) -> str:
        return "ok"

    client = TestClient(app)
    assert client.get("/", headers={"X-API-Key": "a"}).status_code == 200
    assert client.get("/", headers={"X-API-Key": "b"}).status_code == 200
    assert client.get("/", headers={"X-API-Key": "a"}).status_code == 429
    assert client.get("/by-user?user=x", headers={"X-API-Key": "a"}).status_code == 200
    assert client.get("/by-user?user=y", headers={"X-API-Key": "a"}).status_code == 200
    assert client.get("/by-user?user=x", headers={"X-API-Key": "b"}).status_code == 429


def test_limiter_dependency_takes_the_limiters_defaults(clock: ManualClock) -> None:
    limiter = Limiter(key_func="header:X-API-Key", clock=clock, headers="ietf", name="api")
    app = FastAPI()

    @app.get("/", dependencies=[Depends(limiter.dependency("1/minute"))])
    def index() -> str:
        return "ok"

    client = TestClient(app)
    response = client.get("/", headers={"X-API-Key": "a"})
    assert response.headers["ratelimit"] == '"api";r=0;t=60'
    assert client.get("/", headers={"X-API-Key": "b"}).status_code == 200
    assert client.get("/", headers={"X-API-Key": "a"}).status_code == 429


def test_dependency_custom_refusal_needs_and_uses_the_exception_handler(
    clock: ManualClock,
) -> None:
    def build(handler: bool) -> TestClient:
        app = FastAPI()
        if handler:
            app.add_exception_handler(RateLimitRefused, rate_limit_refused_handler)
        limit = RateLimit(
            "1/minute",
            clock=clock,
            on_blocked=lambda request, decision: PlainTextResponse("custom", 429),
        )
        plain = RateLimit("1/minute", clock=clock, body={"error": "slow"}, status_code=503)

        @app.get("/a", dependencies=[Depends(limit)])
        def a() -> str:
            return "a"

        @app.get("/b", dependencies=[Depends(plain)])
        def b() -> str:
            return "b"

        return TestClient(app)

    client = build(handler=True)
    client.get("/a")
    refused = client.get("/a")
    assert (refused.status_code, refused.text) == (429, "custom")
    assert refused.headers["retry-after"] == "60"
    client.get("/b")
    refused = client.get("/b")
    assert (refused.status_code, refused.json()) == (503, {"error": "slow"})
    assert refused.headers["retry-after"] == "60"

    client = build(handler=False)
    client.get("/a")
    with pytest.raises(RuntimeError, match="add_exception_handler"):
        client.get("/a")


def test_dependency_with_a_detail_body_needs_no_handler(clock: ManualClock) -> None:
    app = FastAPI()

    @app.get("/", dependencies=[Depends(RateLimit("1/minute", clock=clock, body={"detail": "no"}))])
    def index() -> str:
        return "ok"

    client = TestClient(app)
    client.get("/")
    refused = client.get("/")
    assert (refused.status_code, refused.json()) == (429, {"detail": "no"})


# --- bad settings -----------------------------------------------------------------------------


def middleware(**settings: Any) -> RateLimitMiddleware:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError

    return RateLimitMiddleware(app, **settings)


@pytest.mark.parametrize(
    ("settings", "error", "match"),
    [
        ({}, TypeError, "needs `limiter`"),
        ({"limit": "10", "window_seconds": 60}, TypeError, "limit"),
        ({"limit": 0, "window_seconds": 60}, ValueError, "limit"),
        ({"rate": "ten per fortnight"}, ValueError, "fortnight"),
        ({"rate": "1/second", "limit": 1, "window_seconds": 1}, TypeError, "not both"),
        ({"rate": "1/second", "headers": "draft"}, ValueError, "draft"),
        ({"rate": "1/second", "key_func": "cookie"}, ValueError, "cookie"),
        ({"rate": "1/second", "cost": 0}, ValueError, "cost"),
        ({"rate": "1/second", "trusted_proxies": ["proxy"]}, ValueError, "proxy"),
        ({"rate": "1/second", "status_code": 200}, ValueError, "200"),
        ({"rate": "1/second", "on_blocked": "nope"}, TypeError, "on_blocked"),
        ({"rate": "1/second", "dynamic_limit": "5/minute"}, TypeError, "dynamic_limit"),
        ({"rate": "1/second", "policy": object()}, TypeError, "policy"),
    ],
)
def test_bad_middleware_settings(
    settings: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        middleware(**settings)


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: RateLimit(100), TypeError, "int"),
        (lambda: RateLimit("often"), ValueError, "often"),
        (lambda: RateLimit("1/minute", key_func="session"), ValueError, "session"),
        (lambda: RateLimit("1/minute", scope=1), TypeError, "scope"),
        (lambda: RateLimit("1/minute", headers="x"), ValueError, "'x'"),
        (lambda: RateLimit("1/minute", on_blocked=429), TypeError, "on_blocked"),
        (lambda: Limiter(headers="x"), ValueError, "'x'"),
        (lambda: Limiter(key_func=3), TypeError, "int"),
        (lambda: Limiter(status_code=302), ValueError, "302"),
        (lambda: Limiter(body=3.5), TypeError, "float"),
        (lambda: Limiter(trusted_proxies=["nope"]), ValueError, "nope"),
        (lambda: Limiter().limit(5), TypeError, "int"),
        (lambda: Limiter().limit("5/minute", scope=5), TypeError, "scope"),
        (lambda: Limiter().limit("sometimes")(lambda request: None), ValueError, "sometimes"),
        (lambda: Limiter().limit("5/minute")("not a function"), TypeError, "str"),
        (lambda: Limiter().limit("5/minute", cost=-1)(lambda: None), ValueError, "cost"),
    ],
)
def test_bad_route_settings(make: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        make()


def test_limit_written_above_the_route_decorator_is_an_error_not_a_silent_no_op() -> None:
    app = FastAPI()
    router = APIRouter()
    limiter = Limiter()
    with pytest.raises(TypeError, match=r"above the route decorator of '/x'.*write it below"):

        @limiter.limit("1/minute")
        @app.get("/x")
        def x() -> str:
            return "x"

    with pytest.raises(TypeError, match="'/y'"):

        @limiter.limit("1/minute")
        @router.get("/y")
        def y() -> str:
            return "y"

    # written below, as documented, it limits
    @app.get("/z")
    @limiter.limit("1/minute")
    def z() -> str:
        return "z"

    client = TestClient(app)
    assert [client.get("/z").status_code for _ in range(2)] == [200, 429]


def test_the_middleware_finds_the_route_as_the_router_does(clock: ManualClock) -> None:
    """The default limit (2) is skipped only for the route the router will take: a router's
    dependencies count as the route's own limit; an earlier route for the same path wins."""
    app = FastAPI()
    app.add_middleware(RateLimitMiddleware, rate="2/minute", clock=clock)
    limiter = Limiter(clock=clock)

    @app.get("/dup")
    def first() -> str:
        return "first"

    @app.get("/dup")
    @limiter.limit("10/minute")
    def second() -> str:  # never reached: the router takes `first`
        return "second"

    @app.get("/files/{name}")
    def any_file(name: str) -> str:
        return name

    @app.get("/files/readme")
    @limiter.limit("10/minute")
    def readme() -> str:  # never reached either: `/files/{name}` comes first
        return "readme"

    router = APIRouter(dependencies=[Depends(RateLimit("10/minute", clock=clock))])

    @router.get("/items/{item_id}")
    def item(item_id: int) -> int:
        return item_id

    app.include_router(router)
    plain_router = APIRouter()

    @plain_router.get("/users/{user_id}")
    def user(user_id: int) -> int:
        return user_id

    @plain_router.get("/open")
    def open_route() -> str:
        return "open"

    limited_include = [Depends(RateLimit("10/minute", clock=clock))]
    app.include_router(plain_router, prefix="/v2", dependencies=limited_include)
    app.include_router(plain_router, prefix="/v3")
    client = TestClient(app)
    assert [client.get("/items/7").status_code for _ in range(5)] == [200] * 5
    assert client.get("/items/7").headers["x-ratelimit-limit"] == "10"
    # the include's own dependencies, under its prefix
    assert [client.get("/v2/users/1").status_code for _ in range(5)] == [200] * 5
    assert client.get("/v2/open").headers["x-ratelimit-limit"] == "10"
    # the same router included without them: the default (2)
    assert [client.get("/v3/open").status_code for _ in range(3)] == [200, 200, 429]
    clock.advance(60)
    assert [client.get("/dup").status_code for _ in range(3)] == [200, 200, 429]
    clock.advance(60)
    assert [client.get("/files/readme").status_code for _ in range(3)] == [200, 200, 429]
