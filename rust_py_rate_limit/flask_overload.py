"""``FlaskOverload``: keeps a Flask app fast under overload. Import it from
:mod:`rust_py_rate_limit.flask`.

It wraps ``app.wsgi_app``: a permit is taken before Flask sees the request (before the request
context, sessions, ``before_request`` hooks and other extensions, rate limits included) and
given back when the app has returned its response, or, for a streamed response (a generator
body: the view's code runs while it is sent), when the server closes the response iterable.
That one place releases exactly once on every path: a response returned, an exception out of
the app, a client gone mid-stream (the server still calls ``close()``, as PEP 3333 requires).
``before_request`` / ``teardown_request`` hooks could not: a response streamed without the
request context is still being produced after teardown, and other ``before_request`` hooks
may answer before ours runs.

Flask serves through WSGI, where a running view cannot be stopped: ``timeout`` bounds the wait
for a permit only (a request whose wait used it up is answered ``timeout_status`` without
running the view).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Final

from flask import request, request_finished
from werkzeug.wsgi import get_path_info

from ._core import ConcurrencyLimiter, ManualClock
from .exceptions import Overloaded
from .overload import OVERLOAD_SETTINGS, OverloadPolicy
from .settings import OverloadSettings, reject_unknown, setting_names

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from flask import Flask, Request, Response
    from typing_extensions import Unpack

__all__ = ["OVERLOAD_CONFIG_KEYS", "FlaskOverload"]

#: The settings only the constructor takes (objects, not config values).
_CONSTRUCTOR_ONLY = frozenset(
    {"concurrency", "clock", "priority", "concurrency_key", "on_overloaded"}
)

#: The settings read from ``app.config``, by the constructor argument that overrides them:
#: every overload setting (``settings.OverloadSettings``) but the constructor's own.
OVERLOAD_CONFIG_KEYS: Final[dict[str, str]] = {
    name: f"RATELIMIT_OVERLOAD_{name.upper()}"
    for name in setting_names(OverloadSettings)
    if name not in _CONSTRUCTOR_ONLY
}
_EXTENSION = "rust_py_rate_limit.overload"
#: Set in the environ of a request whose final response streams (by ``request_finished``).
_STREAMED = "rust_py_rate_limit.overload.streamed"


def _note_streamed(sender: Flask, response: Response, **extra: Any) -> None:
    """``request_finished`` receiver: whether the body Flask sends is a generator, the view's
    code still to run as it is sent (a body already built, a file or an error page is not)."""
    request.environ[_STREAMED] = inspect.isgenerator(response.response)


def _blame(exc: Exception, labels: dict[str, str]) -> Exception:
    """``exc`` with the config key or argument it is about in front of its message."""
    text = str(exc)
    label = next((labels[p] for p in labels if f"`{p}`" in text), None)
    if label is None and "`limit`" in text:  # the ConcurrencyLimiter's name for it
        label = labels.get("max_in_flight")
    kind = TypeError if isinstance(exc, TypeError) else ValueError
    return kind(f"{label}: {text}" if label else text)


class _Releasing:
    """The app's response iterable, giving the permit back when the server closes it."""

    __slots__ = ("iterable", "lease")

    def __init__(self, iterable: Iterable[bytes], lease: Any) -> None:
        self.iterable = iterable
        self.lease = lease

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.iterable)

    def close(self) -> None:
        try:
            close = getattr(self.iterable, "close", None)
            if close is not None:
                close()
        finally:
            self.lease.release()


class _Guard:
    """The WSGI app installed as ``app.wsgi_app``: a permit around the app it wraps."""

    def __init__(self, wsgi_app: WSGIApplication, app: Flask, policy: OverloadPolicy) -> None:
        self.wsgi_app = wsgi_app
        self.app = app
        self.policy = policy
        self.needs_request = policy.priority is not None or policy.concurrency_key is not None

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        policy = self.policy
        if policy.exempt("/" + get_path_info(environ).lstrip("/")):
            return self.wsgi_app(environ, start_response)
        arrived = policy.now()
        request = None
        key, priority = None, 0
        if self.needs_request:
            request = self.app.request_class(environ)
            key, priority = policy.key_and_priority(request)
        try:
            lease = policy.limiter.acquire(key, priority=priority).__enter__()
        except Overloaded as error:
            return self._refuse(environ, start_response, request, error)
        try:
            if policy.timeout is not None and policy.now() - arrived >= policy.timeout:
                lease.release(dropped=True)
                return self._refuse(environ, start_response, request, policy.missed_deadline(key))
            iterable = self.wsgi_app(environ, start_response)
        except BaseException:
            lease.release()
            raise
        if environ.pop(_STREAMED, False):
            return _Releasing(iterable, lease)
        lease.release()  # the body is built; the server only writes it out
        return iterable

    def _refuse(
        self,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        request: Request | None,
        error: Overloaded,
    ) -> Iterable[bytes]:
        app, policy = self.app, self.policy
        refusal, extra = policy.refusal_for(error)
        hook = policy.on_overloaded
        if hook is None:
            response = app.response_class(
                refusal.body, status=refusal.status_code, content_type=refusal.content_type
            )
        else:
            if request is None:
                request = app.request_class(environ)
            with app.app_context():
                returned = app.ensure_sync(hook)(request, error)
                if returned is None:
                    raise TypeError("`on_overloaded` returned None; it must return a response")
                response = app.make_response(returned)
        for name, value in extra:
            if name not in response.headers:  # the hook's own values win
                response.headers[name] = value
        return response(environ, start_response)


class FlaskOverload:
    """At most ``max_in_flight`` requests inside a Flask app at once; the rest wait in a
    bounded queue or are shed with ``shed_status`` (503) and ``Retry-After``.

    ``FlaskOverload(app, max_in_flight=8)``, or ``FlaskOverload(...)`` then ``init_app(app)``.
    The settings are :class:`~rust_py_rate_limit.overload.OverloadPolicy`'s; every one but
    ``concurrency``, ``clock``, ``priority``, ``concurrency_key`` and ``on_overloaded`` can also
    come from ``app.config`` as ``RATELIMIT_OVERLOAD_<NAME>`` (see :data:`OVERLOAD_CONFIG_KEYS`);
    an argument given here wins. Each app gets its own limiter (unless ``concurrency`` gives
    one), read and checked by ``init_app``: a bad value is a ``TypeError`` or ``ValueError``
    naming the key or argument, an unknown ``RATELIMIT_*`` key a ``ValueError``.

    ``priority(request)``, ``concurrency_key(request)`` and ``on_overloaded(request, error)``
    get the app's request object built on the WSGI environ, before Flask routes it (its path,
    headers, args and ``remote_addr``; no ``request.endpoint``, no request context).
    ``on_overloaded`` returns any Flask response value (plain or ``async def``); the refusal's
    ``Retry-After`` is added unless it sets one.
    """

    def __init__(self, app: Flask | None = None, **settings: Unpack[OverloadSettings]) -> None:
        reject_unknown(settings, OVERLOAD_SETTINGS, "FlaskOverload")
        given: dict[str, Any] = dict(settings)
        self._given = {
            name: value
            for name, value in given.items()
            if value is not None and name not in _CONSTRUCTOR_ONLY
        }
        self._objects: dict[str, Any] = {
            name: given[name] for name in sorted(_CONSTRUCTOR_ONLY) if given.get(name) is not None
        }
        concurrency, clock = given.get("concurrency"), given.get("clock")
        if concurrency is not None and not isinstance(concurrency, ConcurrencyLimiter):
            raise TypeError(
                f"`concurrency` must be a ConcurrencyLimiter, not {type(concurrency).__name__}"
            )
        if clock is not None and not isinstance(clock, ManualClock):
            raise TypeError(f"`clock` must be a ManualClock, not {type(clock).__name__}")
        for name in ("priority", "concurrency_key", "on_overloaded"):
            value = self._objects.get(name)
            if value is not None and not callable(value):
                raise TypeError(f"`{name}` must be callable, not {type(value).__name__}")
        self._policies: list[OverloadPolicy] = []
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Read ``app.config``, check every setting and wrap ``app.wsgi_app``."""
        policies = app.extensions.setdefault(_EXTENSION, {})
        if self in policies:
            raise RuntimeError("this FlaskOverload is already initialised on this app")
        policy = self._resolve(app)
        policies[self] = policy
        self._policies.append(policy)
        app.wsgi_app = _Guard(app.wsgi_app, app, policy)  # type: ignore[method-assign]
        request_finished.connect(_note_streamed, app)

    def _resolve(self, app: Flask) -> OverloadPolicy:
        from .flask import check_config_keys  # here: flask.py imports this module

        check_config_keys(app.config)
        values: dict[str, Any] = {}
        labels: dict[str, str] = {}
        for param, key in OVERLOAD_CONFIG_KEYS.items():
            if app.config.get(key) is not None:
                values[param], labels[param] = app.config[key], key
        for param, value in self._given.items():
            values[param], labels[param] = value, f"`{param}`"
        for param in self._objects:
            labels[param] = f"`{param}`"
        if "concurrency" in self._objects and "max_in_flight" in labels:
            raise TypeError(f"give either `concurrency` or {labels['max_in_flight']}, not both")
        if "max_in_flight" not in values and "concurrency" not in self._objects:
            raise TypeError(
                f"FlaskOverload needs `max_in_flight` (or {OVERLOAD_CONFIG_KEYS['max_in_flight']} "
                "in app.config: an int >= 1 or 'auto') or `concurrency`"
            )
        try:
            return OverloadPolicy(**values, **self._objects)
        except (TypeError, ValueError, OverflowError) as exc:
            raise _blame(exc, labels) from None

    @property
    def policy(self) -> OverloadPolicy:
        """The policy of the app this extension was initialised on (see :meth:`policy_for`
        when it serves several)."""
        if len(self._policies) != 1:
            raise RuntimeError(
                f"this FlaskOverload is initialised on {len(self._policies)} apps; "
                "use policy_for(app)"
            )
        return self._policies[0]

    @property
    def limiter(self) -> ConcurrencyLimiter:
        """The :class:`ConcurrencyLimiter` of the app this extension was initialised on."""
        return self.policy.limiter

    def policy_for(self, app: Flask) -> OverloadPolicy:
        """The policy ``init_app(app)`` built for ``app``."""
        policy: OverloadPolicy | None = app.extensions.get(_EXTENSION, {}).get(self)
        if policy is None:
            raise RuntimeError("this FlaskOverload is not initialised on this app")
        return policy
