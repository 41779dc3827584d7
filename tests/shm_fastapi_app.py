"""A FastAPI app with ``10/minute`` per client on the storage ``RATE_LIMIT_STORAGE`` names, for
tests/test_shm_servers.py: ``uvicorn --workers 4 shm_fastapi_app:application``, run from
tests/. ``/pid`` is exempt: it shows which workers are up."""

from __future__ import annotations

import json
import os

from fastapi import FastAPI
from worker_pid import AsgiPid

from rust_py_rate_limit.fastapi import RateLimitMiddleware

app = FastAPI()
app.add_middleware(
    RateLimitMiddleware,
    rate="10/minute",
    exempt_paths=["/pid"],
    # storage, on_full...: a JSON object of further settings
    **json.loads(os.environ.get("RATE_LIMIT_SETTINGS", "{}")),
)


@app.get("/")
def index() -> str:
    return "hello"


@app.get("/pid")
def pid() -> str:
    return "up"


application = AsgiPid(app)
