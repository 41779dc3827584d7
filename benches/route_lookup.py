"""Nanoseconds per route lookup of ``RateLimitMiddleware``: ``_RouteLimits.own_limit(scope)``.

Before it counts a request, the Starlette/FastAPI middleware asks whether the request's route
has a limit of its own (which then replaces the default limit). This times that question
alone, on a FastAPI app with 20 routes ``/items{i}/{item_id}`` (after FastAPI's own four docs
routes) and a request to ``GET /items10/42``, the middle one, in three apps:

- ``no route limited``: the lookup finds the routing table unchanged and no route to match;
- ``another route limited``: the last route has ``@Limiter().limit(...)``; the request's path
  is matched against that route's pattern, and fails;
- ``the requested route limited``: ``/items10/{item_id}`` has the limit; its pattern matches,
  so the routes before it that could match the same path are matched too (the router would
  take an earlier match): those whose literal start agrees with ``/items10/``, here none.

Each loop is ``for _ in calls: own_limit(scope)`` with ``own_limit`` bound once, timed with
``time.perf_counter_ns``, gc disabled; the floor is the same loop calling a Python function
that returns False (the loop and one Python call, nothing looked up). The loops run
interleaved, one after the other in each round (the order reversed every other round). The
table gives ns per call (each loop's best round and its median) and the lookup's own cost, the
median over rounds of ``loop - floor`` within a round.

Run it from outside the checkout against an installed build with FastAPI (see
benches/README.md)::

    python benches/route_lookup.py [--calls N] [--repeats N]
"""

from __future__ import annotations

import argparse
import gc
import importlib
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CHECKOUT = Path(__file__).resolve().parent.parent
ROUTES = 20
REQUESTED = 10  # the middle route
CALLS = 200_000
REPEATS = 15
FLOOR = "floor: a Python function returning False"


def import_library() -> None:
    """Imports the installed package, never the checkout's (which has no compiled ``_core``)."""
    sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != CHECKOUT]
    importlib.import_module("rust_py_rate_limit")


def make_app(limited: int | None) -> Any:
    """A FastAPI app with ROUTES routes; route number ``limited`` has a limit of its own."""
    from fastapi import FastAPI
    from starlette.responses import PlainTextResponse

    from rust_py_rate_limit.fastapi import Limiter

    app = FastAPI()

    def item_endpoint() -> Callable[..., Any]:
        async def item(item_id: int) -> PlainTextResponse:
            return PlainTextResponse("Hello, world!")

        return item

    for i in range(ROUTES):
        endpoint = item_endpoint()
        if i == limited:
            endpoint = Limiter().limit("5/minute")(endpoint)
        app.get(f"/items{i}/{{item_id}}")(endpoint)
    return app


def scope_for(app: Any) -> dict[str, Any]:
    """The scope the middleware sees (Starlette sets ``app`` before the middleware runs)."""
    return {
        "type": "http",
        "method": "GET",
        "path": f"/items{REQUESTED}/42",
        "root_path": "",
        "query_string": b"",
        "headers": [],
        "app": app,
    }


def nothing(scope: dict[str, Any]) -> bool:
    return False


def timed(f: Callable[[Any], object], arg: Any, calls: range) -> int:
    start = time.perf_counter_ns()
    for _ in calls:
        f(arg)
    return time.perf_counter_ns() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=CALLS, help="calls per loop and round")
    parser.add_argument("--repeats", type=int, default=REPEATS, help="rounds")
    args = parser.parse_args()
    import_library()
    import fastapi

    import rust_py_rate_limit
    from rust_py_rate_limit.starlette import _RouteLimits

    cases = {
        "no route limited": (make_app(None), False),
        "another route limited (the last)": (make_app(ROUTES - 1), False),
        "the requested route limited": (make_app(REQUESTED), True),
    }
    loops: dict[str, tuple[Callable[[Any], object], dict[str, Any]]] = {}
    for name, (app, expected) in cases.items():
        scope = scope_for(app)
        own_limit = _RouteLimits().own_limit
        if own_limit(scope) is not expected:  # also builds the lookup's table, once
            raise RuntimeError(f"{name}: own_limit is not {expected}")
        loops[name] = (own_limit, scope)
    loops[FLOOR] = (nothing, scope_for(None))

    print(f"rust_py_rate_limit {rust_py_rate_limit.__version__} from {rust_py_rate_limit.__file__}")
    print(
        f"fastapi {fastapi.__version__}, Python {sys.version.split()[0]}, {ROUTES} routes "
        f"(+ {len(cases['no route limited'][0].routes) - ROUTES} of FastAPI's), "
        f"GET /items{REQUESTED}/42, {args.calls:,} calls per loop, {args.repeats} rounds"
    )
    calls = range(args.calls)
    rounds: list[dict[str, float]] = []
    gc.disable()
    for round_number in range(args.repeats):
        order = list(loops.items())
        if round_number % 2:
            order.reverse()
        rounds.append({name: timed(f, arg, calls) / args.calls for name, (f, arg) in order})
    gc.enable()

    print()
    print("| case | ns per call, best | median | lookup alone (median of loop - floor) |")
    print("|---|---:|---:|---:|")
    for name in loops:
        values = [r[name] for r in rounds]
        alone = (
            "" if name == FLOOR else f"{statistics.median(r[name] - r[FLOOR] for r in rounds):.0f}"
        )
        print(f"| {name} | {min(values):.0f} | {statistics.median(values):.0f} | {alone} |")


if __name__ == "__main__":
    main()
