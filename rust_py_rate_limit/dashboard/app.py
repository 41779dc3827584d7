"""``Dashboard``: the page and its ``api/state`` as an ASGI app (the object itself) and as a
WSGI app (``.wsgi``), to mount under FastAPI/Starlette, Django or Flask."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from ..metrics._keys import KeyLabels, MetricsKeys, top_setting
from ..metrics._limiters import AnyLimiter, checked_limiters
from . import page
from .readings import HISTORY_SECONDS, History, read

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
StartResponse = Callable[[str, list[tuple[str, str]]], Any]

#: ``auth=``: given the ASGI scope or the WSGI environ, whether to serve the request.
Auth = Callable[[MutableMapping[str, Any]], bool]

#: The most keys ``top=`` may list a limiter (each a line of the card).
MAX_DASHBOARD_TOP = 100

_HTML = "text/html; charset=utf-8"
_JSON = "application/json"


class Dashboard:
    """A live view of ``limiters``: requests allowed and refused per second over the last
    minutes, the most refused keys, keys tracked, the storage's health, and for concurrency
    limiters what is in flight and queued against the limit.

    ``Dashboard(...)`` is an ASGI app and ``Dashboard(...).wsgi`` the same one for WSGI.
    ``auth`` (given the ASGI scope or the WSGI environ) refuses a request with 403 when it
    returns false; mount the dashboard behind the application's own authentication as well.
    ``metrics_keys`` (``"plain"``, ``"hash"``, ``"none"``) and ``salt`` say how keys are shown,
    as for the exporters; ``top`` how many keys a limiter lists.
    """

    def __init__(
        self,
        *limiters: AnyLimiter,
        auth: Auth | None = None,
        metrics_keys: MetricsKeys = "plain",
        salt: bytes | str | None = None,
        top: int = 10,
        title: str = "Rate limits",
    ) -> None:
        self.limiters = checked_limiters(limiters, "Dashboard")
        if auth is not None and not callable(auth):
            raise TypeError(
                f"`auth` must be callable or None, not {type(auth).__name__} ({auth!r})"
            )
        if not isinstance(title, str):
            raise TypeError(f"`title` must be a str, not {type(title).__name__} ({title!r})")
        if not title.strip():
            raise ValueError(f"`title` must not be empty, got {title!r}")
        self.auth = auth
        self.top = top_setting(top, MAX_DASHBOARD_TOP)
        self.title = title
        self._keys = KeyLabels(metrics_keys, salt)
        self._history = History()
        self._lock = threading.Lock()
        #: The clock of the history's samples (a test's stand-in replaces it).
        self._now: Callable[[], float] = time.monotonic

    def state(self) -> dict[str, Any]:
        """What ``api/state`` answers: every limiter's figures and history, and the cards'
        HTML (the page swaps it in)."""
        now = self._now()
        readings = [read(limiter, self._keys, self.top) for limiter in self.limiters]
        with self._lock:
            self._history.add(now, readings)
            series = [self._history.series(r["name"], now) for r in readings]
        cards = "".join(
            page.card(reading, history, HISTORY_SECONDS)
            for reading, history in zip(readings, series, strict=True)
        )
        return {
            "limiters": [
                {**reading, "history": history}
                for reading, history in zip(readings, series, strict=True)
            ],
            "html": cards,
        }

    def _answer(self, path: str, method: str, request: MutableMapping[str, Any]) -> _Reply:
        if self.auth is not None and not self.auth(request):
            return _Reply(403, "text/plain; charset=utf-8", b"forbidden")
        if method not in ("GET", "HEAD"):
            return _Reply(405, "text/plain; charset=utf-8", b"method not allowed")
        if path == "/api/state":
            return _Reply(200, _JSON, json.dumps(self.state()).encode())
        if path == "/":
            body = page.page(self.title, self.state()["html"]).encode()
            return _Reply(200, _HTML, body)
        return _Reply(404, "text/plain; charset=utf-8", b"not found")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        path = _relative(scope.get("path", "/"), scope.get("root_path", ""))
        if path == "":
            full, root = scope.get("path", ""), scope.get("root_path", "")
            # Starlette keeps the mount point in `path`; other servers give it apart.
            target = full if root and full.startswith(root) else root + full
            reply = _Reply(307, "text/plain", b"", location=target.rstrip("/") + "/")
        else:
            reply = self._answer(path, scope.get("method", "GET"), scope)
        await send({"type": "http.response.start", "status": reply.status, "headers": reply.raw})
        body = b"" if scope.get("method") == "HEAD" else reply.body
        await send({"type": "http.response.body", "body": body})

    def wsgi(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """The dashboard as a WSGI app (mount it under a prefix: its ``SCRIPT_NAME``)."""
        path = environ.get("PATH_INFO", "")
        if path == "":
            location = environ.get("SCRIPT_NAME", "").rstrip("/") + "/"
            reply = _Reply(307, "text/plain", b"", location=location)
        else:
            reply = self._answer(path, environ.get("REQUEST_METHOD", "GET"), environ)
        start_response(reply.status_line, reply.str_headers)
        return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else reply.body]

    def django_view(self, request: Any, path: str = "") -> Any:
        """The dashboard as a Django view, for a URL pattern that passes what follows the
        mount point as ``path``:
        ``re_path(r"^limits/(?P<path>.*)$", dashboard.django_view)``. ``auth`` is given the
        request's ``META``."""
        reply = self._answer("/" + path, request.method, request.META)
        return _django_response(reply)


def _django_response(reply: _Reply) -> Any:
    from django.http import HttpResponse

    response = HttpResponse(reply.body, status=reply.status)
    for name, value in reply.headers:
        if name != "content-length":
            response[name] = value
    return response


def _relative(path: str, root_path: str) -> str:
    """The path below the mount point (Starlette keeps the full path in ``path``)."""
    if root_path and path.startswith(root_path):
        return path[len(root_path) :]
    return path


_REASONS = {
    200: "OK",
    307: "Temporary Redirect",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
}


class _Reply:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, content_type: str, body: bytes, location: str = "") -> None:
        self.status = status
        self.body = body
        self.headers = [
            ("content-type", content_type),
            ("content-length", str(len(body))),
            ("cache-control", "no-store"),
            ("x-content-type-options", "nosniff"),
            (
                "content-security-policy",
                "default-src 'none'; style-src 'unsafe-inline'; "
                "script-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:",
            ),
        ]
        if location:
            self.headers.append(("location", location))

    @property
    def raw(self) -> list[tuple[bytes, bytes]]:
        return [(k.encode(), v.encode("latin-1")) for k, v in self.headers]

    @property
    def str_headers(self) -> list[tuple[str, str]]:
        return self.headers

    @property
    def status_line(self) -> str:
        return f"{self.status} {_REASONS[self.status]}"
