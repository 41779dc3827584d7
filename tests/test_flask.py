"""The Flask integration, through Flask's test client."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from typing import Any, ClassVar

import pytest
from flask import Blueprint, Flask, abort, jsonify
from flask.testing import FlaskClient
from flask.typing import ResponseReturnValue
from flask.views import MethodView
from werkzeug.test import TestResponse

from rust_py_rate_limit import Decision, ManualClock, RateLimiter
from rust_py_rate_limit.flask import SETTINGS, FlaskRateLimiter

XRL = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


def make_app(
    config: dict[str, Any] | None = None, **settings: Any
) -> tuple[Flask, FlaskRateLimiter, FlaskClient]:
    """An app with `/` (the default limit), `/search` (5/minute of its own), `/health` (exempt)."""
    app = Flask(__name__)
    app.config.update(config or {})
    limiter = FlaskRateLimiter(app, **settings)

    @app.get("/")
    def index() -> ResponseReturnValue:
        return "home"

    @app.get("/search")
    @limiter.limit("5/minute")
    def search() -> ResponseReturnValue:
        return "results"

    @app.get("/health")
    @limiter.exempt
    def health() -> ResponseReturnValue:
        return "ok"

    return app, limiter, app.test_client()


def statuses(client: FlaskClient, path: str, n: int, **kwargs: Any) -> list[int]:
    return [client.get(path, **kwargs).status_code for _ in range(n)]


def remaining(response: TestResponse) -> int:
    return int(response.headers["X-RateLimit-Remaining"])


# -- the default limit -------------------------------------------------------------------------


def test_admitted_requests_carry_the_rate_limit_headers(clock: ManualClock) -> None:
    _, _, client = make_app(limit=3, window_seconds=60, clock=clock)
    responses = [client.get("/") for _ in range(3)]
    assert [r.status_code for r in responses] == [200] * 3
    assert [remaining(r) for r in responses] == [2, 1, 0]
    assert {r.headers["X-RateLimit-Limit"] for r in responses} == {"3"}
    assert {r.headers["X-RateLimit-Reset"] for r in responses} == {"60"}
    assert all("Retry-After" not in r.headers for r in responses)


def test_the_request_over_the_limit_is_a_429_with_retry_after(clock: ManualClock) -> None:
    app, _, client = make_app(limit=2, window_seconds=60, clock=clock)
    calls: list[int] = []

    @app.get("/counted")
    def counted() -> ResponseReturnValue:
        calls.append(1)
        return "ok"

    assert statuses(client, "/counted", 2) == [200, 200]
    clock.advance(15)
    refused = client.get("/counted")
    assert refused.status_code == 429
    assert refused.get_json() == {"detail": "Too many requests"}
    assert refused.headers["Content-Type"] == "application/json"
    assert refused.headers["Retry-After"] == "45"
    assert remaining(refused) == 0
    assert len(calls) == 2  # the refused request never reached the view


def test_advancing_the_clock_admits_again(clock: ManualClock) -> None:
    _, _, client = make_app(limit=2, window_seconds=10, clock=clock)
    assert statuses(client, "/", 3) == [200, 200, 429]
    clock.advance(9.9)
    assert client.get("/").status_code == 429
    clock.advance(0.1)
    assert client.get("/").status_code == 200


@pytest.mark.parametrize(
    ("style", "present", "absent"),
    [
        ("x-ratelimit", XRL, ("RateLimit", "RateLimit-Policy")),
        ("ietf", ("RateLimit", "RateLimit-Policy"), XRL),
        ("both", (*XRL, "RateLimit", "RateLimit-Policy"), ()),
        (None, (), (*XRL, "RateLimit", "RateLimit-Policy")),
    ],
)
def test_header_styles(
    clock: ManualClock, style: str | None, present: tuple[str, ...], absent: tuple[str, ...]
) -> None:
    _, _, client = make_app(limit=1, window_seconds=30, headers=style, clock=clock)
    admitted, refused = client.get("/"), client.get("/")
    for name in present:
        assert name in admitted.headers and name in refused.headers
    for name in absent:
        assert name not in admitted.headers and name not in refused.headers
    if style in ("ietf", "both"):
        assert admitted.headers["RateLimit-Policy"] == '"default";q=1;w=30'
        assert admitted.headers["RateLimit"] == '"default";r=0;t=30'
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "30"  # whatever the style


def test_error_responses_of_the_view_carry_the_headers(clock: ManualClock) -> None:
    app, _, client = make_app(limit=5, window_seconds=60, clock=clock)
    app.config["PROPAGATE_EXCEPTIONS"] = False

    @app.get("/missing")
    def missing() -> ResponseReturnValue:
        abort(404)

    @app.get("/broken")
    def broken() -> ResponseReturnValue:
        raise RuntimeError("boom")

    not_found, error, no_route = client.get("/missing"), client.get("/broken"), client.get("/x")
    assert (not_found.status_code, error.status_code, no_route.status_code) == (404, 500, 404)
    assert [remaining(r) for r in (not_found, error, no_route)] == [4, 3, 2]


def test_on_blocked_builds_the_refusal_and_gets_the_headers(clock: ManualClock) -> None:
    seen: list[Decision] = []

    def on_blocked(request: Any, decision: Decision) -> ResponseReturnValue:
        seen.append(decision)
        return jsonify(error="slow down", retry=decision.retry_after), 503

    _, _, client = make_app(limit=1, window_seconds=20, on_blocked=on_blocked, clock=clock)
    client.get("/")
    refused = client.get("/")
    assert refused.status_code == 503
    assert refused.get_json() == {"error": "slow down", "retry": 20.0}
    assert refused.headers["Retry-After"] == "20"
    assert remaining(refused) == 0
    assert [d.allowed for d in seen] == [False]


def test_on_blocked_returning_none_is_an_error_not_an_admission(clock: ManualClock) -> None:
    app, _, client = make_app(limit=1, window_seconds=20, on_blocked=lambda r, d: None, clock=clock)
    app.testing = True  # the error propagates to the test instead of becoming a 500
    client.get("/")
    with pytest.raises(TypeError, match="on_blocked"):
        client.get("/")


def test_status_code_and_body_settings(clock: ManualClock) -> None:
    _, _, client = make_app(
        {"RATELIMIT_STATUS_CODE": 503, "RATELIMIT_BODY": "busy"},
        limit=1,
        window_seconds=5,
        clock=clock,
    )
    client.get("/")
    refused = client.get("/")
    assert (refused.status_code, refused.data) == (503, b"busy")
    assert refused.headers["Content-Type"].startswith("text/plain")
    assert refused.headers["Retry-After"] == "5"


def test_a_limiter_instance_is_used_as_given(clock: ManualClock) -> None:
    shared = RateLimiter(limit=3, window_seconds=60, clock=clock)
    _, _, client = make_app(limiter=shared)
    client.get("/")
    assert shared.remaining("127.0.0.1") == 2


# -- per-route limits --------------------------------------------------------------------------


def test_a_route_limit_is_independent_of_the_default(clock: ManualClock) -> None:
    _, _, client = make_app(limit=3, window_seconds=60, clock=clock)
    # /search has its own 5/minute: it is not counted against the default...
    searches = [client.get("/search") for _ in range(6)]
    assert [r.status_code for r in searches] == [200] * 5 + [429]
    assert searches[0].headers["X-RateLimit-Limit"] == "5"
    assert remaining(client.get("/")) == 2
    # ...and an exhausted default does not refuse it.
    assert statuses(client, "/", 3) == [200, 200, 429]
    clock.advance(60)
    assert client.get("/search").status_code == 200


def test_route_limits_work_without_a_default_limit(clock: ManualClock) -> None:
    _, _, client = make_app(clock=clock)
    home = client.get("/")
    assert home.status_code == 200 and "X-RateLimit-Limit" not in home.headers
    assert statuses(client, "/search", 6) == [200] * 5 + [429]


@pytest.mark.parametrize("bare", [True, False])
def test_a_limit_without_a_rate_takes_the_default_rate_with_its_own_counter(
    clock: ManualClock, bare: bool
) -> None:
    app, limiter, client = make_app(limit=2, window_seconds=60, clock=clock)

    def report() -> ResponseReturnValue:
        return "report"

    app.add_url_rule(
        "/report", view_func=limiter.limit(report) if bare else limiter.limit()(report)
    )
    assert statuses(client, "/report", 3) == [200, 200, 429]
    assert statuses(client, "/", 3) == [200, 200, 429]


def test_the_decorator_works_above_or_below_app_route(clock: ManualClock) -> None:
    app = Flask(__name__)
    limiter = FlaskRateLimiter(app, clock=clock)

    @limiter.limit("1/minute")
    @app.get("/above")
    def above() -> ResponseReturnValue:
        return "a"

    @app.get("/below")
    @limiter.limit("1/minute")
    def below() -> ResponseReturnValue:
        return "b"

    client = app.test_client()
    assert statuses(client, "/above", 2) == [200, 429]
    assert statuses(client, "/below", 2) == [200, 429]


def test_route_settings_key_cost_status_and_on_blocked(clock: ManualClock) -> None:
    app = Flask(__name__)
    limiter = FlaskRateLimiter(app, clock=clock)

    @app.post("/upload")
    @limiter.limit(
        "10/minute",
        key_func="header:X-Api-Key",
        cost=lambda req: int(req.args.get("files", "1")),
        status_code=503,
        on_blocked=lambda request, decision: ("full", 507),
    )
    def upload() -> ResponseReturnValue:
        return "stored"

    client = app.test_client()
    first = client.post("/upload?files=4", headers={"X-Api-Key": "a"})
    assert (first.status_code, remaining(first)) == (200, 6)
    assert client.post("/upload?files=6", headers={"X-Api-Key": "a"}).status_code == 200
    refused = client.post("/upload", headers={"X-Api-Key": "a"})
    assert (refused.status_code, refused.data) == (507, b"full")  # on_blocked wins
    assert refused.headers["Retry-After"] == "60"
    assert client.post("/upload?files=10", headers={"X-Api-Key": "b"}).status_code == 200


def test_several_rates_in_one_limit_are_checked_together(clock: ManualClock) -> None:
    app = Flask(__name__)
    limiter = FlaskRateLimiter(app, clock=clock)

    @app.get("/")
    @limiter.limit("2/second; 3/minute")
    def index() -> ResponseReturnValue:
        return "x"

    client = app.test_client()
    assert statuses(client, "/", 3) == [200, 200, 429]  # the refused one consumed nothing
    clock.advance(1)
    responses = [client.get("/") for _ in range(2)]
    assert [r.status_code for r in responses] == [200, 429]
    assert responses[1].headers["Retry-After"] == "59"  # the minute limit refused


def test_stacked_limits_each_count(clock: ManualClock) -> None:
    app = Flask(__name__)
    limiter = FlaskRateLimiter(app, clock=clock)

    @app.get("/")
    @limiter.limit("1/minute", key_func="header:X-User")
    @limiter.limit("3/minute")
    def index() -> ResponseReturnValue:
        return "x"

    client = app.test_client()
    users = ["a", "a", "b", "c", "d"]
    codes = [client.get("/", headers={"X-User": u}).status_code for u in users]
    assert codes == [200, 429, 200, 429, 429]


def test_method_views_are_limited_through_their_decorators(clock: ManualClock) -> None:
    app = Flask(__name__)
    limiter = FlaskRateLimiter(app, limit=10, window_seconds=60, clock=clock)

    class Items(MethodView):
        decorators: ClassVar[list[Callable[..., Any]]] = [limiter.limit("1/minute")]

        def get(self) -> ResponseReturnValue:
            return "items"

    app.add_url_rule("/items", view_func=Items.as_view("items"))
    responses = [app.test_client().get("/items") for _ in range(2)]
    assert [r.status_code for r in responses] == [200, 429]
    assert responses[0].headers["X-RateLimit-Limit"] == "1"


def test_async_views_are_limited(clock: ManualClock) -> None:
    app, limiter, client = make_app(limit=5, window_seconds=60, clock=clock)

    @app.get("/slow")
    @limiter.limit("2/minute")
    async def slow() -> ResponseReturnValue:
        await asyncio.sleep(0)
        return "done"

    responses = [client.get("/slow") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert responses[0].data == b"done"
    assert [remaining(r) for r in responses] == [1, 0, 0]


def test_an_async_on_blocked_is_awaited(clock: ManualClock) -> None:
    async def on_blocked(request: Any, decision: Decision) -> ResponseReturnValue:
        return "later", 429

    _, _, client = make_app(limit=1, window_seconds=9, on_blocked=on_blocked, clock=clock)
    client.get("/")
    refused = client.get("/")
    assert (refused.status_code, refused.data, refused.headers["Retry-After"]) == (
        429,
        b"later",
        "9",
    )


# -- exemptions --------------------------------------------------------------------------------


def test_exempt_views_are_not_counted_and_get_no_headers(clock: ManualClock) -> None:
    _, _, client = make_app(limit=1, window_seconds=60, clock=clock)
    assert statuses(client, "/", 2) == [200, 429]
    health = client.get("/health")
    assert health.status_code == 200 and "X-RateLimit-Limit" not in health.headers


def test_exempt_paths_and_methods(clock: ManualClock) -> None:
    app, _, client = make_app(
        {"RATELIMIT_EXEMPT_PATHS": ["/", "/search*"], "RATELIMIT_EXEMPT_METHODS": ["OPTIONS"]},
        limit=1,
        window_seconds=60,
        clock=clock,
    )

    @app.route("/items", methods=["GET", "OPTIONS"])
    def items() -> ResponseReturnValue:
        return "items"

    assert statuses(client, "/", 3) == [200] * 3  # exact path
    assert statuses(client, "/search", 7) == [200] * 7  # prefix: even its own limit
    assert [client.options("/items").status_code for _ in range(3)] == [200] * 3
    assert statuses(client, "/items", 2) == [200, 429]


def test_static_files_are_not_counted(tmp_path: Any, clock: ManualClock) -> None:
    (tmp_path / "app.css").write_text("body {}")
    app = Flask(__name__, static_folder=str(tmp_path), static_url_path="/static")
    FlaskRateLimiter(app, limit=1, window_seconds=60, clock=clock)
    client = app.test_client()
    assert statuses(client, "/static/app.css", 3) == [200] * 3


def test_a_view_cannot_be_both_exempt_and_limited() -> None:
    limiter = FlaskRateLimiter()

    def view() -> str:
        return ""

    limiter.exempt(view)
    with pytest.raises(TypeError, match="both exempt and limited"):
        limiter.limit("1/second")(view)
    bp = Blueprint("bp", __name__)
    limiter.limit("1/second")(bp)
    with pytest.raises(TypeError, match="'bp' cannot be both exempt and limited"):
        limiter.exempt(bp)
    with pytest.raises(ValueError, match="'bp' already has a limit"):
        limiter.limit("2/second")(bp)


# -- blueprints --------------------------------------------------------------------------------


def blueprint_app(clock: ManualClock) -> tuple[Flask, FlaskRateLimiter, FlaskClient]:
    app, limiter, client = make_app(limit=2, window_seconds=60, clock=clock)
    api = Blueprint("api", __name__, url_prefix="/api")
    limiter.limit("3/minute")(api)

    @api.get("/a")
    def a() -> ResponseReturnValue:
        return "a"

    @api.get("/b")
    def b() -> ResponseReturnValue:
        return "b"

    @api.get("/c")
    @limiter.limit("1/minute")
    def c() -> ResponseReturnValue:
        return "c"

    app.register_blueprint(api)
    return app, limiter, client


def test_a_blueprint_limit_is_shared_by_its_routes_per_client(clock: ManualClock) -> None:
    _, _, client = blueprint_app(clock)
    first = client.get("/api/a")
    assert first.headers["X-RateLimit-Limit"] == "3"
    assert [client.get(p).status_code for p in ("/api/b", "/api/a", "/api/b")] == [200, 200, 429]
    other = {"REMOTE_ADDR": "192.0.2.9"}
    assert client.get("/api/a", environ_base=other).status_code == 200  # another client
    assert statuses(client, "/", 2) == [200, 200]  # not counted against the default


def test_a_route_limit_in_a_limited_blueprint_counts_both(clock: ManualClock) -> None:
    _, _, client = blueprint_app(clock)
    assert statuses(client, "/api/c", 2) == [200, 429]  # its own 1/minute, checked first
    assert statuses(client, "/api/a", 3) == [200, 200, 429]  # the blueprint's 2nd to 4th


def test_a_parent_blueprint_limit_covers_nested_blueprints(clock: ManualClock) -> None:
    app = Flask(__name__)
    limiter = FlaskRateLimiter(app, clock=clock)
    parent, child = Blueprint("v1", __name__, url_prefix="/v1"), Blueprint("users", __name__)
    limiter.limit("2/minute")(parent)

    @parent.get("/status")
    def status() -> ResponseReturnValue:
        return "up"

    @child.get("/users")
    def users() -> ResponseReturnValue:
        return "users"

    parent.register_blueprint(child)
    app.register_blueprint(parent)
    client = app.test_client()
    codes = [client.get(p).status_code for p in ("/v1/users", "/v1/status", "/v1/users")]
    assert codes == [200, 200, 429]


def test_an_exempt_blueprint(clock: ManualClock) -> None:
    app, limiter, client = make_app(limit=1, window_seconds=60, clock=clock)
    admin = Blueprint("admin", __name__, url_prefix="/admin")
    limiter.exempt(admin)

    @admin.get("/")
    def dashboard() -> ResponseReturnValue:
        return "admin"

    app.register_blueprint(admin)
    assert statuses(client, "/admin/", 3) == [200] * 3


# -- keys and proxies --------------------------------------------------------------------------


def test_a_forwarded_for_from_an_untrusted_peer_is_ignored(clock: ManualClock) -> None:
    _, _, client = make_app(
        {"RATELIMIT_TRUSTED_PROXIES": ["10.0.0.0/8"]}, limit=1, window_seconds=60, clock=clock
    )
    peer = {"REMOTE_ADDR": "203.0.113.5"}
    assert (
        client.get("/", environ_base=peer, headers={"X-Forwarded-For": "1.1.1.1"}).status_code
        == 200
    )
    spoofed = client.get("/", environ_base=peer, headers={"X-Forwarded-For": "2.2.2.2"})
    assert spoofed.status_code == 429  # still counted as 203.0.113.5


def test_a_forwarded_for_from_a_trusted_proxy_is_the_client(clock: ManualClock) -> None:
    _, _, client = make_app(
        {"RATELIMIT_TRUSTED_PROXIES": ["10.0.0.0/8"]}, limit=1, window_seconds=60, clock=clock
    )
    proxy = {"REMOTE_ADDR": "10.0.0.1"}
    for client_ip in ("198.51.100.1", "198.51.100.2"):
        headers = {"X-Forwarded-For": client_ip}
        assert client.get("/", environ_base=proxy, headers=headers).status_code == 200
    again = client.get("/", environ_base=proxy, headers={"X-Forwarded-For": "198.51.100.1"})
    assert again.status_code == 429
    # Without the setting, the proxy itself would be the one client.
    _, _, plain = make_app(limit=1, window_seconds=60, clock=clock)
    assert [
        plain.get("/", environ_base=proxy, headers={"X-Forwarded-For": ip}).status_code
        for ip in ("198.51.100.1", "198.51.100.2")
    ] == [200, 429]


def test_key_settings(clock: ManualClock) -> None:
    _, _, client = make_app(
        {"RATELIMIT_KEY_FUNC": "header:X-Api-Key"}, limit=1, window_seconds=60, clock=clock
    )
    assert client.get("/", headers={"X-Api-Key": "k1"}).status_code == 200
    assert client.get("/", headers={"X-Api-Key": "k2"}).status_code == 200
    assert client.get("/", headers={"X-Api-Key": "k1"}).status_code == 429
    tenant: Callable[[Any], str] = lambda req: req.args.get("t", "none")  # noqa: E731
    _, _, client = make_app(
        {"RATELIMIT_KEY_FUNC": "ip"}, key_func=tenant, limit=1, window_seconds=60, clock=clock
    )
    assert [client.get(f"/?t={t}").status_code for t in "aba"] == [200, 200, 429]


# -- cost and dynamic limits -------------------------------------------------------------------


def test_cost_int_and_callable(clock: ManualClock) -> None:
    _, _, client = make_app(limit=10, window_seconds=60, cost=4, clock=clock)
    assert [remaining(client.get("/")) for _ in range(2)] == [6, 2]
    assert client.get("/").status_code == 429
    weigh: Callable[[Any], int] = lambda req: 5 if req.method == "POST" else 1  # noqa: E731
    app, _, client = make_app(limit=10, window_seconds=60, cost=weigh, clock=clock)
    app.add_url_rule("/post", "post", lambda: "posted", methods=["POST"])
    assert remaining(client.post("/post")) == 5
    assert remaining(client.get("/")) == 4


def test_a_dynamic_limit_per_tenant(clock: ManualClock) -> None:
    tiers = {"gold": "5/minute", "free": "1/minute"}

    def tier(req: Any) -> str | None:
        return tiers.get(req.headers.get("X-Tier", ""))

    _, _, client = make_app(
        limit=2, window_seconds=60, dynamic_limit=tier, key_func="header:X-Tenant", clock=clock
    )
    gold = {"X-Tier": "gold", "X-Tenant": "acme"}
    free = {"X-Tier": "free", "X-Tenant": "bob"}
    assert [client.get("/", headers=gold).status_code for _ in range(6)] == [200] * 5 + [429]
    assert client.get("/", headers=gold).headers["X-RateLimit-Limit"] == "5"
    assert [client.get("/", headers=free).status_code for _ in range(2)] == [200, 429]
    plain = {"X-Tenant": "carol"}  # no tier: the default limit
    assert [client.get("/", headers=plain).status_code for _ in range(3)] == [200, 200, 429]


# -- setup: factory, app.config, errors --------------------------------------------------------


def test_the_factory_pattern(clock: ManualClock) -> None:
    limiter = FlaskRateLimiter(limit=1, window_seconds=60, clock=clock)

    def create_app() -> Flask:
        app = Flask(__name__)

        @app.get("/")
        def index() -> ResponseReturnValue:
            return "x"

        @app.get("/search")
        @limiter.limit("2/minute")
        def search() -> ResponseReturnValue:
            return "y"

        limiter.init_app(app)
        return app

    first, second = create_app().test_client(), create_app().test_client()
    assert statuses(first, "/", 2) == [200, 429]
    assert statuses(second, "/", 2) == [200, 429]  # every app counts on its own
    assert statuses(first, "/search", 3) == [200, 200, 429]
    assert statuses(second, "/search", 3) == [200, 200, 429]


def test_init_app_twice_on_one_app_is_an_error() -> None:
    app = Flask(__name__)
    limiter = FlaskRateLimiter(app, limit=1, window_seconds=1)
    with pytest.raises(RuntimeError, match="already"):
        limiter.init_app(app)


def test_settings_from_app_config(clock: ManualClock) -> None:
    config = {
        "RATELIMIT_RATE": "3/minute",
        "RATELIMIT_ALGORITHM": "gcra",
        "RATELIMIT_BURST": 2,
        "RATELIMIT_HEADERS": "ietf",
    }
    _, _, client = make_app(config, clock=clock)
    assert statuses(client, "/", 3) == [200, 200, 429]  # a burst of 2
    clock.advance(20)  # one request every 20 seconds
    admitted = client.get("/")
    assert admitted.status_code == 200
    assert admitted.headers["RateLimit-Policy"] == '"default";q=3;w=60'
    assert "X-RateLimit-Limit" not in admitted.headers


def test_limit_and_window_from_app_config(clock: ManualClock) -> None:
    config = {"RATELIMIT_LIMIT": 2, "RATELIMIT_WINDOW_SECONDS": 30, "RATELIMIT_MAX_KEYS": 1}
    _, _, client = make_app(config, clock=clock)
    assert statuses(client, "/", 3) == [200, 200, 429]
    other = client.get("/", environ_base={"REMOTE_ADDR": "192.0.2.1"})
    assert other.status_code == 429  # max_keys: the table is full


def test_constructor_arguments_win_over_app_config(clock: ManualClock) -> None:
    config: dict[str, Any] = {"RATELIMIT_RATE": "1/minute", "RATELIMIT_HEADERS": "ietf"}
    _, _, client = make_app(config, limit=3, window_seconds=60, headers="x-ratelimit", clock=clock)
    assert statuses(client, "/", 4) == [200, 200, 200, 429]
    assert client.get("/").headers["X-RateLimit-Limit"] == "3"
    config = {"RATELIMIT_LIMIT": 1, "RATELIMIT_WINDOW_SECONDS": 60}
    _, _, client = make_app(config, limit=2, clock=clock)  # the window still from the config
    assert statuses(client, "/", 3) == [200, 200, 429]


def test_ratelimit_enabled_false_turns_everything_off(clock: ManualClock) -> None:
    _, _, client = make_app({"RATELIMIT_ENABLED": False}, limit=1, window_seconds=60, clock=clock)
    responses = [client.get(p) for p in ("/", "/", "/search", "/search")] + [
        client.get("/search") for _ in range(5)
    ]
    assert {r.status_code for r in responses} == {200}
    assert all("X-RateLimit-Limit" not in r.headers for r in responses)


def test_every_config_key_is_in_settings() -> None:
    names = "LIMIT WINDOW_SECONDS RATE ALGORITHM BURST KEY_FUNC HEADERS TRUSTED_PROXIES"
    names += " EXEMPT_PATHS EXEMPT_METHODS MAX_KEYS CLEANUP_INTERVAL ENABLED STATUS_CODE BODY"
    names += " RESET_FORMAT STORAGE_URI KEY_PREFIX TIMEOUT ON_STORAGE_ERROR FALLBACK"
    names += " LOCAL_DENY_CACHE ON_FULL NAME"
    assert sorted(SETTINGS.values()) == sorted(f"RATELIMIT_{n}" for n in names.split())


def test_an_unknown_ratelimit_setting_is_an_error_naming_it() -> None:
    app = Flask(__name__)
    app.config["RATELIMIT_LIMT"] = 10
    with pytest.raises(ValueError, match=r"'RATELIMIT_LIMT'.*did you mean 'RATELIMIT_LIMIT'"):
        FlaskRateLimiter(app, limit=1, window_seconds=1)
    app.config.pop("RATELIMIT_LIMT")
    # flask-limiter's names point at ours; an unrelated name gets no "did you mean"
    app.config["RATELIMIT_STORAGE_URL"] = "memory://"
    with pytest.raises(ValueError, match=r"'RATELIMIT_STORAGE_URL'.*name for it is 'RATELIMIT_STO"):
        FlaskRateLimiter(app)
    app.config.pop("RATELIMIT_STORAGE_URL")
    app.config["RATELIMIT_DEFAULTS_PER_METHOD"] = True
    with pytest.raises(ValueError, match="RATELIMIT_DEFAULTS_PER_METHOD") as error:
        FlaskRateLimiter(app)
    assert "did you mean" not in str(error.value)


@pytest.mark.parametrize(
    ("config", "error", "named"),
    [
        ({"RATELIMIT_LIMIT": "100", "RATELIMIT_WINDOW_SECONDS": 60}, TypeError, "RATELIMIT_LIMIT"),
        ({"RATELIMIT_LIMIT": 0, "RATELIMIT_WINDOW_SECONDS": 60}, ValueError, "RATELIMIT_LIMIT"),
        (
            {"RATELIMIT_LIMIT": 5, "RATELIMIT_WINDOW_SECONDS": -1},
            ValueError,
            "RATELIMIT_WINDOW_SECONDS",
        ),
        ({"RATELIMIT_LIMIT": 5}, TypeError, "RATELIMIT_WINDOW_SECONDS"),
        ({"RATELIMIT_RATE": "lots"}, ValueError, "RATELIMIT_RATE"),
        (
            {"RATELIMIT_RATE": "1/second", "RATELIMIT_LIMIT": 5, "RATELIMIT_WINDOW_SECONDS": 1},
            TypeError,
            "RATELIMIT_RATE",
        ),
        (
            {"RATELIMIT_RATE": "5/minute", "RATELIMIT_ALGORITHM": "lottery"},
            ValueError,
            "RATELIMIT_ALGORITHM",
        ),
        ({"RATELIMIT_RATE": "5/minute", "RATELIMIT_BURST": 0}, ValueError, "RATELIMIT_BURST"),
        ({"RATELIMIT_RATE": "5/minute", "RATELIMIT_BURST": 3}, ValueError, "RATELIMIT_BURST"),
        ({"RATELIMIT_BURST": 3, "RATELIMIT_ALGORITHM": "gcra"}, TypeError, "RATELIMIT_BURST"),
        ({"RATELIMIT_KEY_FUNC": "cookie"}, ValueError, "RATELIMIT_KEY_FUNC"),
        ({"RATELIMIT_HEADERS": "x-rate"}, ValueError, "RATELIMIT_HEADERS"),
        ({"RATELIMIT_TRUSTED_PROXIES": ["10.0.0.300/8"]}, ValueError, "RATELIMIT_TRUSTED_PROXIES"),
        ({"RATELIMIT_EXEMPT_PATHS": [5]}, TypeError, "RATELIMIT_EXEMPT_PATHS"),
        ({"RATELIMIT_EXEMPT_METHODS": [None]}, TypeError, "RATELIMIT_EXEMPT_METHODS"),
        ({"RATELIMIT_MAX_KEYS": -1}, ValueError, "RATELIMIT_MAX_KEYS"),
        ({"RATELIMIT_CLEANUP_INTERVAL": "1s"}, TypeError, "RATELIMIT_CLEANUP_INTERVAL"),
        ({"RATELIMIT_ENABLED": "false"}, TypeError, "RATELIMIT_ENABLED"),
        ({"RATELIMIT_STATUS_CODE": 200}, ValueError, "RATELIMIT_STATUS_CODE"),
        ({"RATELIMIT_BODY": 42}, TypeError, "RATELIMIT_BODY"),
    ],
)
def test_a_bad_config_value_is_an_error_naming_the_setting(
    config: dict[str, Any], error: type[Exception], named: str
) -> None:
    app = Flask(__name__)
    app.config.update(config)
    limiter = FlaskRateLimiter()
    with pytest.raises(error, match=named):
        limiter.init_app(app)


@pytest.mark.parametrize(
    ("settings", "error", "named"),
    [
        ({"limit": True, "window_seconds": 1}, TypeError, "`limit`"),
        ({"rate": "1/second", "limit": 1}, TypeError, "`rate`"),
        ({"limiter": "memory"}, TypeError, "`limiter`"),
        ({"limiter": RateLimiter(1, 1), "limit": 2}, TypeError, "`limit`"),
        ({"cost": 0}, ValueError, "`cost`"),
        ({"cost": "1"}, TypeError, "`cost`"),
        ({"dynamic_limit": "gold"}, TypeError, "`dynamic_limit`"),
        ({"on_blocked": 429}, TypeError, "`on_blocked`"),
        ({"clock": 0.0}, TypeError, "`clock`"),
        ({"headers": "all"}, ValueError, "`headers`"),
        ({"enabled": 1}, TypeError, "`enabled`"),
    ],
)
def test_a_bad_argument_is_an_error_naming_it(
    settings: dict[str, Any], error: type[Exception], named: str
) -> None:
    with pytest.raises(error, match=named):
        FlaskRateLimiter(**settings)


@pytest.mark.parametrize("setting", ["cost", "dynamic_limit"])
def test_default_only_settings_without_a_default_limit_are_an_error(setting: str) -> None:
    value: Any = 2 if setting == "cost" else (lambda req: None)
    with pytest.raises(TypeError, match=f"`{setting}` applies to the default limit"):
        FlaskRateLimiter(Flask(__name__), **{setting: value})


@pytest.mark.parametrize(
    ("args", "settings", "error", "named"),
    [
        (("often",), {}, ValueError, "often"),
        (("1/minute",), {"key_func": "cookie"}, ValueError, "`key_func`"),
        (("1/minute",), {"cost": -1}, ValueError, "`cost`"),
        (("1/minute",), {"burst": 3}, TypeError, "`algorithm`"),
        (("1/minute",), {"algorithm": "fixed", "burst": 3}, ValueError, "burst"),
        (("1/minute",), {"headers": "x"}, ValueError, "`headers`"),
        (("1/minute",), {"limiter": RateLimiter(1, 1)}, TypeError, "`limiter`"),
        (("1/minute",), {"on_blocked": "no"}, TypeError, "`on_blocked`"),
    ],
)
def test_a_bad_route_limit_is_an_error_when_decorating(
    args: tuple[Any, ...], settings: dict[str, Any], error: type[Exception], named: str
) -> None:
    with pytest.raises(error, match=named):
        FlaskRateLimiter().limit(*args, **settings)


def test_a_limit_without_a_rate_needs_a_default_limit() -> None:
    limiter = FlaskRateLimiter()

    @limiter.limit
    def report() -> str:
        return ""

    with pytest.raises(ValueError, match=r"'report'.*default limit"):
        limiter.init_app(Flask(__name__))


def test_importing_the_package_does_not_import_flask(tmp_path: Any) -> None:
    code = "import sys, rust_py_rate_limit; assert 'flask' not in sys.modules"
    # From a temporary directory, so the installed package is imported, not the checkout's.
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert result.returncode == 0, result.stderr
