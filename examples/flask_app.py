"""A Flask app with rate limits: a default limit, a per-route limit, an exempt route and a
blueprint limit, counted per client address.

Run with:  .venv/bin/pip install '.[flask]' && .venv/bin/flask --app examples/flask_app.py run

Then ``curl -i http://127.0.0.1:5000/`` shows the ``X-RateLimit-*`` headers; the 11th request in a
minute gets a 429 with ``Retry-After``. Every ``RATELIMIT_*`` setting can be changed from the
environment with Flask's ``FLASK_`` prefix, e.g. ``FLASK_RATELIMIT_LIMIT=3``.
"""

from __future__ import annotations

from flask import Blueprint, Flask, jsonify
from flask.typing import ResponseReturnValue

from rust_py_rate_limit.flask import FlaskRateLimiter

limiter = FlaskRateLimiter()
api = Blueprint("api", __name__, url_prefix="/api")
# Every route of the blueprint shares one limit of 20 a minute per client.
limiter.limit("20/minute")(api)


@api.get("/items")
def items() -> ResponseReturnValue:
    return jsonify(items=["a", "b", "c"])


@api.get("/items/<int:item_id>")
def item(item_id: int) -> ResponseReturnValue:
    return jsonify(id=item_id)


def create_app() -> Flask:
    app = Flask(__name__)
    app.config.update(
        RATELIMIT_LIMIT=10,  # the default limit: 10 requests a minute per client
        RATELIMIT_WINDOW_SECONDS=60,
        RATELIMIT_HEADERS="both",  # X-RateLimit-* and the IETF RateLimit fields
    )
    app.config.from_prefixed_env()  # FLASK_RATELIMIT_LIMIT=3 overrides the limit

    @app.get("/")
    def index() -> ResponseReturnValue:
        return jsonify(message="hello")

    @app.get("/search")
    @limiter.limit("3/minute")  # instead of the default, a stricter limit of its own
    def search() -> ResponseReturnValue:
        return jsonify(results=[])

    @app.get("/health")
    @limiter.exempt
    def health() -> ResponseReturnValue:
        return "ok"

    app.register_blueprint(api)
    limiter.init_app(app)
    return app


app = create_app()
