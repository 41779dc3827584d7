"""A Flask app with ``10/minute`` per client on the storage ``FLASK_RATELIMIT_STORAGE_URI``
names, for tests/test_shm_servers.py: ``gunicorn -w 4 shm_flask_app:app``, run from tests/.
``/pid`` is exempt: it shows which workers are up."""

from __future__ import annotations

from flask import Flask
from worker_pid import WsgiPid

from rust_py_rate_limit.flask import FlaskRateLimiter

app = Flask(__name__)
app.config.from_prefixed_env()  # FLASK_RATELIMIT_STORAGE_URI=shm://..., FLASK_RATELIMIT_...
FlaskRateLimiter(app, rate="10/minute", exempt_paths=["/pid"])


@app.get("/")
def index() -> str:
    return "hello"


@app.get("/pid")
def pid() -> str:
    return "up"


app.wsgi_app = WsgiPid(app.wsgi_app)  # type: ignore[method-assign]
