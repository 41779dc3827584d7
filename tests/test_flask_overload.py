"""FlaskOverload: permits, the queue, shedding and the wait-only timeout, through Flask's test
client. Permits are held by the test itself (from ``overload.limiter``) or by views blocking on
a ``threading.Event``; queue deadlines pass on a ManualClock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, Request, Response, jsonify, stream_with_context
from flask.testing import FlaskClient
from in_thread import PATIENCE, InThread, until

from rust_py_rate_limit import ConcurrencyLimiter, ManualClock, Overloaded
from rust_py_rate_limit.flask import OVERLOAD_CONFIG_KEYS, FlaskOverload, FlaskRateLimiter

SHED_BODY = {"detail": "Service overloaded, retry later"}
TIMEOUT_BODY = {"detail": "Request took too long"}


def make_app(config: dict[str, Any] | None = None, **settings: Any) -> tuple[Flask, FlaskOverload]:
    """An app with `/` and `/health`, and its FlaskOverload built from ``settings``."""
    app = Flask(__name__)
    app.config.update(config or {})
    app.calls = []  # type: ignore[attr-defined]

    @app.get("/")
    def index() -> str:
        app.calls.append("index")  # type: ignore[attr-defined]
        return "hello"

    @app.get("/health")
    def health() -> str:
        return "ok"

    return app, FlaskOverload(app, **settings)


def hold(overload: FlaskOverload, key: str | None = None, cost: int = 1) -> Any:
    lease = overload.limiter.try_acquire(key, cost)
    assert lease is not None
    return lease


# --- shedding -----------------------------------------------------------------------------------


def test_a_request_past_the_limit_is_shed_with_503_and_retry_after() -> None:
    app, overload = make_app(max_in_flight=1)
    client = app.test_client()
    lease = hold(overload)
    shed = client.get("/")
    lease.release()
    served = client.get("/")

    assert shed.status_code == 503
    assert shed.headers["Retry-After"] == "1"
    assert shed.content_type == "application/json"
    assert shed.get_json() == SHED_BODY
    assert served.status_code == 200
    assert app.calls == ["index"]  # type: ignore[attr-defined]
    assert overload.limiter.in_flight == 0


def test_the_permit_is_held_while_the_view_runs() -> None:
    app, overload = make_app(max_in_flight=1, retry_after=7, shed_status=429)
    entered, leave = threading.Event(), threading.Event()

    @app.get("/slow")
    def slow() -> str:
        entered.set()
        assert leave.wait(PATIENCE)
        return "slow"

    client = app.test_client()
    inside = InThread(lambda: app.test_client().get("/slow"))
    assert entered.wait(PATIENCE)
    assert overload.limiter.in_flight == 1
    shed = client.get("/")
    leave.set()
    assert inside.result().status_code == 200
    assert overload.limiter.in_flight == 0
    assert (shed.status_code, shed.headers["Retry-After"]) == (429, "7")
    assert client.get("/").status_code == 200


def test_exempt_paths_pass_while_the_limit_is_held() -> None:
    app, overload = make_app(max_in_flight=1, exempt_paths=["/health", "/static/*"])
    client = app.test_client()
    lease = hold(overload)
    statuses = [client.get(p).status_code for p in ("/health", "/static/none.css", "/")]
    lease.release()
    assert statuses == [200, 404, 503]  # the static path is not limited (and not found)
    assert overload.limiter.stats()["acquired"] == 1


# --- the queue ----------------------------------------------------------------------------------


def test_a_queued_request_is_served_when_a_permit_frees() -> None:
    app, overload = make_app(max_in_flight=1, queue=1, queue_timeout=PATIENCE)
    limiter = overload.limiter
    lease = hold(overload)
    waiting = InThread(lambda: app.test_client().get("/"))
    until(lambda: limiter.queued == 1)
    full = app.test_client().get("/")
    lease.release()
    served = waiting.result()

    assert served.status_code == 200
    assert (full.status_code, full.headers["Retry-After"]) == (503, "1")
    assert limiter.in_flight == 0 and limiter.stats()["queued_total"] == 1


def test_a_queued_request_past_queue_timeout_is_shed(clock: ManualClock) -> None:
    app, overload = make_app(max_in_flight=1, queue=1, queue_timeout=2.0, clock=clock)
    limiter = overload.limiter
    lease = hold(overload)
    waiting = InThread(lambda: app.test_client().get("/"))
    until(lambda: limiter.queued == 1)
    clock.advance(1.9)
    time.sleep(0.02)
    assert waiting.thread.is_alive()
    clock.advance(0.1)
    timed_out = waiting.result()
    lease.release()

    assert (timed_out.status_code, timed_out.headers["Retry-After"]) == (503, "1")
    assert timed_out.get_json() == SHED_BODY
    assert limiter.stats()["timed_out"] == 1
    assert limiter.in_flight == 0 and limiter.queued == 0


def test_priority_sheds_the_least_important_waiter_and_serves_the_most_important(
    clock: ManualClock,
) -> None:
    def by_header(request: Request) -> int:
        return int(request.headers.get("X-Priority", "0"))

    app, overload = make_app(
        max_in_flight=1, queue=1, queue_timeout=60.0, clock=clock, priority=by_header
    )
    limiter = overload.limiter
    lease = hold(overload)
    low = InThread(lambda: app.test_client().get("/", headers={"X-Priority": "0"}))
    until(lambda: limiter.queued == 1)
    high = InThread(lambda: app.test_client().get("/", headers={"X-Priority": "5"}))
    low_response = low.result()
    until(lambda: limiter.queued == 1)
    lower = app.test_client().get("/", headers={"X-Priority": "-1"})
    lease.release()
    high_response = high.result()

    assert (low_response.status_code, low_response.headers["Retry-After"]) == (503, "1")
    assert lower.status_code == 503
    assert high_response.status_code == 200
    assert app.calls == ["index"]  # type: ignore[attr-defined]


def test_concurrency_key_limits_each_tenant_apart() -> None:
    seen: list[Any] = []

    def tenant(request: Request) -> str:
        seen.append((type(request), request.path, request.args.get("q")))
        return request.headers.get("X-Tenant", "anonymous")

    app, overload = make_app(max_in_flight=1, concurrency_key=tenant)
    client = app.test_client()
    lease = hold(overload, "acme")
    acme = client.get("/?q=1", headers={"X-Tenant": "acme"})
    other = client.get("/?q=2", headers={"X-Tenant": "globex"})
    lease.release()
    assert [acme.status_code, other.status_code] == [503, 200]
    assert seen == [(app.request_class, "/", "1"), (app.request_class, "/", "2")]


# --- the timeout: the wait only -----------------------------------------------------------------


def test_timeout_answers_408_without_running_the_view_when_the_wait_used_it_up(
    clock: ManualClock,
) -> None:
    # Time before the permit came counts against the timeout; it passes here in the priority
    # function (the clock is advanced there), standing for a wait in the queue.
    def slow_to_rank(request: Request) -> int:
        clock.advance(1.0)
        return 0

    app, overload = make_app(max_in_flight=1, timeout=1.0, clock=clock, priority=slow_to_rank)
    response = app.test_client().get("/")
    assert response.status_code == 408
    assert response.get_json() == TIMEOUT_BODY
    assert "Retry-After" not in response.headers
    assert app.calls == []  # type: ignore[attr-defined]
    assert overload.limiter.in_flight == 0
    assert overload.limiter.stats()["deadline_missed"] == 1


def test_timeout_never_cuts_a_running_view(clock: ManualClock) -> None:
    app, _ = make_app(max_in_flight=1, timeout=1.0, clock=clock)

    @app.get("/slow")
    def slow() -> str:
        clock.advance(10.0)
        return "done"

    response = app.test_client().get("/slow")
    assert (response.status_code, response.data) == (200, b"done")


# --- permits come back --------------------------------------------------------------------------


def test_the_permit_comes_back_after_an_exception_in_the_view() -> None:
    app, overload = make_app(max_in_flight=1)

    @app.get("/broken")
    def broken() -> str:
        raise RuntimeError("boom")

    assert app.test_client().get("/broken").status_code == 500  # Flask's error page
    assert overload.limiter.in_flight == 0
    app.testing = True  # exceptions propagate out of the app now
    with pytest.raises(RuntimeError, match="boom"):
        app.test_client().get("/broken")
    assert overload.limiter.in_flight == 0
    assert app.test_client().get("/").status_code == 200


def test_a_streamed_response_holds_its_permit_until_it_is_sent() -> None:
    app, overload = make_app(max_in_flight=1)
    produced: list[int] = []

    @app.get("/stream")
    def stream() -> Response:
        def chunks() -> Iterator[str]:
            for n in range(3):
                produced.append(n)
                yield str(n)

        return Response(chunks())

    client = app.test_client()
    with client.get("/stream", buffered=False) as response:
        assert overload.limiter.in_flight == 1  # the generator has yet to run
        assert client.get("/").status_code == 503
        assert b"".join(response.iter_encoded()) == b"012"
    assert overload.limiter.in_flight == 0
    assert produced == [0, 1, 2]


def test_a_stream_abandoned_midway_releases_its_permit() -> None:
    app, overload = make_app(max_in_flight=1)

    @app.get("/stream")
    def stream() -> Response:
        @stream_with_context
        def chunks() -> Iterator[str]:
            yield "first"
            yield "second"

        return Response(chunks())

    client = app.test_client()
    response = client.get("/stream", buffered=False)
    assert next(iter(response.response)) == b"first"
    assert overload.limiter.in_flight == 1
    response.close()  # the client left: the server closes the iterable
    assert overload.limiter.in_flight == 0


# --- refusals -----------------------------------------------------------------------------------


def test_on_overloaded_builds_the_refusal() -> None:
    def own(request: Request, error: Overloaded) -> Any:
        return jsonify(reason=error.reason, path=request.path), 429, {"Retry-After": "30"}

    async def plain(request: Request, error: Overloaded) -> Any:
        return f"busy: {error.limit}", 503

    app, overload = make_app(max_in_flight=2, on_overloaded=own)
    other, other_overload = make_app(max_in_flight=2, on_overloaded=plain)
    leases = [hold(overload, cost=2), hold(other_overload, cost=2)]
    mine, async_one = app.test_client().get("/x"), other.test_client().get("/")
    for lease in leases:
        lease.release()

    assert (mine.status_code, mine.headers["Retry-After"], mine.get_json()) == (
        429,
        "30",
        {"reason": "no_permit", "path": "/x"},
    )
    assert (async_one.status_code, async_one.headers["Retry-After"], async_one.data) == (
        503,
        "1",
        b"busy: 2",
    )


def test_on_overloaded_returning_none_is_an_error() -> None:
    app, overload = make_app(max_in_flight=1, on_overloaded=lambda request, error: None)
    lease = hold(overload)
    with pytest.raises(TypeError, match="`on_overloaded` returned None"):
        app.test_client().get("/")
    lease.release()


def test_custom_bodies_and_statuses_from_app_config() -> None:
    app, overload = make_app(
        {
            "RATELIMIT_OVERLOAD_MAX_IN_FLIGHT": 1,
            "RATELIMIT_OVERLOAD_BODY": "busy",
            "RATELIMIT_OVERLOAD_SHED_STATUS": 529,
            "RATELIMIT_OVERLOAD_RETRY_AFTER": 3,
        }
    )
    lease = hold(overload)
    shed = app.test_client().get("/")
    lease.release()
    assert (shed.status_code, shed.data, shed.content_type, shed.headers["Retry-After"]) == (
        529,
        b"busy",
        "text/plain; charset=utf-8",
        "3",
    )


# --- setup --------------------------------------------------------------------------------------


def test_an_argument_wins_over_app_config_and_each_app_gets_its_own_limiter() -> None:
    overload = FlaskOverload(queue=2, queue_timeout=0.5)
    apps = [Flask("a"), Flask("b")]
    apps[0].config.update(RATELIMIT_OVERLOAD_MAX_IN_FLIGHT=3, RATELIMIT_OVERLOAD_QUEUE=9)
    apps[1].config.update(RATELIMIT_OVERLOAD_MAX_IN_FLIGHT=5)
    for app in apps:
        overload.init_app(app)
    first, second = (overload.policy_for(app).limiter for app in apps)
    assert (first.limit, first.queue, second.limit, second.queue) == (3, 2, 5, 2)
    with pytest.raises(RuntimeError, match="initialised on 2 apps; use policy_for"):
        overload.limiter  # noqa: B018
    with pytest.raises(RuntimeError, match="already initialised on this app"):
        overload.init_app(apps[0])
    with pytest.raises(RuntimeError, match="not initialised on this app"):
        overload.policy_for(Flask("c"))


def test_a_shared_concurrency_limiter_counts_every_app() -> None:
    shared = ConcurrencyLimiter(1)
    first, _ = make_app(concurrency=shared)
    second, _ = make_app(concurrency=shared)
    lease = shared.try_acquire()
    assert [
        first.test_client().get("/").status_code,
        second.test_client().get("/").status_code,
    ] == [
        503,
        503,
    ]
    lease.release()


def test_with_the_rate_limiter_on_the_same_app(clock: ManualClock) -> None:
    app = Flask(__name__)
    app.config.update(RATELIMIT_RATE="2/minute", RATELIMIT_OVERLOAD_MAX_IN_FLIGHT=4)
    FlaskRateLimiter(app, clock=clock)
    overload = FlaskOverload(app)

    @app.get("/")
    def index() -> str:
        return "hello"

    client: FlaskClient = app.test_client()
    assert [client.get("/").status_code for _ in range(3)] == [200, 200, 429]
    assert overload.limiter.in_flight == 0


K = "RATELIMIT_OVERLOAD_"
TWO = {"max_in_flight": 2}


@pytest.mark.parametrize(
    ("config", "settings", "error", "message"),
    [
        ({}, {}, TypeError, "needs `max_in_flight`"),
        ({K + "MAX_INFLIGHT": 2}, {}, ValueError, f"did you mean '{K}MAX_IN_FLIGHT'"),
        ({"RATELIMIT_OVERLAOD_QUEUE": 2}, TWO, ValueError, f"did you mean '{K}QUEUE'"),
        ({"RATELIMIT_STORAGE_URL": "x"}, TWO, ValueError, "name for it is 'RATELIMIT_STORAGE_URI'"),
        ({K + "MAX_IN_FLIGHT": 0}, {}, ValueError, f"^{K}MAX_IN_FLIGHT: "),
        ({}, {"max_in_flight": 0}, ValueError, "^`max_in_flight`: "),
        ({}, {"max_in_flight": True}, TypeError, "^`max_in_flight`: "),
        ({K + "QUEUE": -1}, TWO, ValueError, f"^{K}QUEUE: "),
        ({}, {**TWO, "order": "random"}, ValueError, "^`order`: "),
        ({K + "SHED_STATUS": 200}, TWO, ValueError, f"^{K}SHED_STATUS: .*4xx/5xx"),
        ({}, {**TWO, "timeout_status": "408"}, TypeError, "^`timeout_status`: "),
        ({}, {**TWO, "retry_after": -1}, ValueError, "^`retry_after`: "),
        ({K + "TIMEOUT": float("nan")}, TWO, ValueError, f"^{K}TIMEOUT: "),
        (
            {},
            {**TWO, "queue": 1, "queue_timeout": 2.0, "timeout": 1.0},
            ValueError,
            "^`queue_timeout`: .*must not exceed",
        ),
        ({}, {**TWO, "body": 1.5}, TypeError, "^`body`: "),
        ({}, {**TWO, "timeout_body": 1.5}, TypeError, "^`timeout_body`: "),
        ({}, {**TWO, "exempt_paths": [1]}, TypeError, "^`exempt_paths`: "),
        ({}, {**TWO, "priority": 3}, TypeError, "`priority` must be callable"),
        (
            {},
            {**TWO, "on_overloaded": lambda request: None},
            TypeError,
            r"on_overloaded\(request, error\)",
        ),
        ({}, {**TWO, "clock": 1}, TypeError, "`clock` must be a ManualClock"),
        ({}, {"concurrency": 3}, TypeError, "`concurrency` must be a ConcurrencyLimiter"),
        (
            {K + "MAX_IN_FLIGHT": 2},
            {"concurrency": ConcurrencyLimiter(2)},
            TypeError,
            f"either `concurrency` or {K}MAX_IN_FLIGHT",
        ),
    ],
)
def test_bad_settings_fail_at_init_naming_the_setting(
    config: dict[str, Any], settings: dict[str, Any], error: type[Exception], message: str
) -> None:
    app = Flask(__name__)
    app.config.update(config)
    with pytest.raises(error, match=message):
        FlaskOverload(app, **settings)


def test_the_rate_limiter_accepts_the_overload_keys_and_catches_their_typos() -> None:
    app = Flask(__name__)
    app.config.update(RATELIMIT_RATE="2/minute", RATELIMIT_OVERLOAD_MAX_IN_FLIGHT=4)
    FlaskRateLimiter(app)  # the overload keys are known, not typos
    other = Flask(__name__)
    other.config.update(RATELIMIT_RATE="2/minute", RATELIMIT_OVERLOAD_QUEU=4)
    with pytest.raises(ValueError, match="did you mean 'RATELIMIT_OVERLOAD_QUEUE'"):
        FlaskRateLimiter(other)


#: A bad value for each setting app.config can hold.
BAD_CONFIG_VALUES: dict[str, Any] = {
    "max_in_flight": 0,
    "queue": -1,
    "queue_timeout": -1.0,
    "order": "random",
    "adaptive": "aimd",  # only with max_in_flight="auto"
    "initial_limit": 4,  # likewise
    "min_limit": 2,
    "max_limit": 8,
    "timeout": 0,
    "exempt_paths": [1],
    "shed_status": 200,
    "timeout_status": 99,
    "retry_after": -1,
    "body": 1.5,
    "name": 7,
    "timeout_body": 1.5,
}


@pytest.mark.parametrize("param", OVERLOAD_CONFIG_KEYS)
def test_every_config_key_is_read_and_checked_naming_it(param: str) -> None:
    key = OVERLOAD_CONFIG_KEYS[param]
    app = Flask(__name__)
    app.config[key] = BAD_CONFIG_VALUES[param]
    if param != "max_in_flight":
        app.config[OVERLOAD_CONFIG_KEYS["max_in_flight"]] = 2
    with pytest.raises((TypeError, ValueError), match=f"^{key}: "):
        FlaskOverload(app)
