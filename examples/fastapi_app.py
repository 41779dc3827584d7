"""FastAPI with rust-py-rate-limit: a global limit, a per-route dependency and a decorator.

Run from the checkout with:
    .venv/bin/pip install '.[fastapi]' uvicorn
    .venv/bin/uvicorn --app-dir examples fastapi_app:app

(``--app-dir examples`` rather than ``examples.fastapi_app``: with the checkout itself on
``sys.path`` its ``rust_py_rate_limit/``, which has no compiled module, would shadow the
installed package.)

Then ``curl -i http://127.0.0.1:8000/`` shows the X-RateLimit-* headers. ``RATE_LIMIT``
(default 100) sets the global limit per client address per minute.
"""

from __future__ import annotations

import os
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from rust_py_rate_limit import Decision
from rust_py_rate_limit.fastapi import Limiter, RateLimit, RateLimitMiddleware

app = FastAPI(title="rate-limited")

# Every request, per client address: RATE_LIMIT per minute; /health is never counted.
app.add_middleware(
    RateLimitMiddleware,
    limit=int(os.environ.get("RATE_LIMIT", "100")),
    window_seconds=60,
    exempt_paths=["/health"],
)

# Defaults for the decorated endpoints: key by API key header, else by address.
limiter = Limiter(key_func="header:X-API-Key", headers="both")


def too_fast(request: Request, decision: Decision) -> JSONResponse:
    """The refusal of /login: a body of our own (Retry-After is added for us)."""
    return JSONResponse(
        {"error": "too many login attempts", "retry_after": decision.retry_after},
        status_code=429,
    )


@app.get("/")
async def index() -> dict[str, str]:
    return {"hello": "world"}


@app.get("/search", dependencies=[Depends(RateLimit("10/minute"))])
async def search(q: str = "") -> dict[str, str]:
    """10 searches a minute per address, on top of the global limit."""
    return {"query": q}


@app.get("/export")
def export(
    _limit: Annotated[None, Depends(RateLimit("2/minute", key_func="header:X-API-Key", cost=1))],
) -> dict[str, int]:
    """A sync endpoint with the dependency as an ``Annotated`` parameter."""
    return {"rows": 1000}


@app.post("/login")
@limiter.limit("5/minute", on_blocked=too_fast)
async def login(request: Request) -> dict[str, bool]:
    """5 attempts a minute per API key (or address)."""
    return {"ok": True}


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}
