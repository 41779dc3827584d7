"""A Flask app behind FlaskOverload, for the real-server tests (tests/test_overload_servers.py):
``gunicorn overload_flask_app:app``, run from tests/.

``/hold`` keeps its permit until ``/release`` is called; ``/status`` (exempt) reports the
permits held; ``/stream`` streams from a generator that waits for ``/release``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from flask import Flask, Response

from rust_py_rate_limit.flask import FlaskOverload

app = Flask(__name__)
app.config.from_prefixed_env()  # FLASK_RATELIMIT_OVERLOAD_MAX_IN_FLIGHT=2, ...
overload = FlaskOverload(app, exempt_paths=["/status", "/release"], retry_after=2)
HOLD = threading.Event()


@app.get("/hold")
def hold() -> str:
    return "held" if HOLD.wait(10) else "never released"


@app.get("/stream")
def stream() -> Response:
    def chunks() -> Iterator[str]:
        yield "first "
        yield "second" if HOLD.wait(10) else "never released"

    return Response(chunks())


@app.get("/release")
def release() -> str:
    HOLD.set()
    return "released"


@app.get("/status")
def status() -> dict[str, int]:
    return {"in_flight": overload.limiter.in_flight}
