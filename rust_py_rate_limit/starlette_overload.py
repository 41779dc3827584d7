"""``OverloadMiddleware``: keeps a Starlette (or FastAPI) app fast under overload, a pure ASGI
middleware. Import it from :mod:`rust_py_rate_limit.starlette` or ``.fastapi``.

Per request, in order: the per-client rate limit, when given (429 as
:class:`~rust_py_rate_limit.starlette.RateLimitMiddleware` answers); then a permit from the
concurrency limit: at once, after a wait in the queue, or shed with ``shed_status`` (503) and
``Retry-After``; then the app, within ``timeout`` seconds counted from the request's arrival: an
app that has not started its response by then is cancelled and answered ``timeout_status``
(408). A response already started is never cut. The limit counts requests inside the app, not
open connections, so idle keep-alive sockets cost nothing.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._core import RateLimiter
from .exceptions import Overloaded
from .overload import OVERLOAD_SETTINGS, OverloadPolicy
from .settings import OverloadSettings, PolicySettings, reject_unknown
from .starlette import RateLimitMiddleware

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["OverloadMiddleware"]

#: WebSocket close code for "try again later" (RFC 6455's registry: 1013).
TRY_AGAIN_LATER = 1013


class _Deadline:
    """One request's deadline: its task is cancelled then unless its response has started."""

    __slots__ = ("at", "expired", "started", "task")

    def __init__(self, at: float, task: asyncio.Task[Any]) -> None:
        self.at = at
        self.task = task
        self.started = False
        self.expired = False

    def expire(self) -> None:
        if not self.started:
            self.expired = True
            self.task.cancel()


class _DeadlineWatch:
    """Every deadline of one middleware, checked by one timer per ``tick`` while any is
    watched. A timer per request (``call_later`` and its ``cancel``) costs ~3 µs, more than
    the rest of the middleware; this costs a set insert and removal. A deadline passes at
    most one tick late (``timeout / 8``, between 1 and 100 ms)."""

    def __init__(self, timeout: float) -> None:
        self.tick = min(max(timeout / 8, 0.001), 0.1)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.watched: set[_Deadline] = set()
        self.timer: asyncio.TimerHandle | None = None

    def watch(self, deadline: _Deadline) -> None:
        loop = deadline.task.get_loop()
        if loop is not self.loop:  # a new event loop (tests run several): start afresh
            self.loop, self.watched, self.timer = loop, set(), None
        self.watched.add(deadline)
        if self.timer is None:
            self.timer = loop.call_later(self.tick, self._sweep)

    def unwatch(self, deadline: _Deadline) -> None:
        self.watched.discard(deadline)

    def _sweep(self) -> None:
        loop = self.loop
        assert loop is not None
        now = loop.time()
        due = [deadline for deadline in self.watched if deadline.at <= now]
        for deadline in due:
            self.watched.discard(deadline)
            deadline.expire()
        self.timer = loop.call_later(self.tick, self._sweep) if self.watched else None


class OverloadMiddleware:
    """At most ``max_in_flight`` requests inside the app at once; the rest wait in a bounded
    queue or are shed at once, and a request past its ``timeout`` is answered for the app.

    The settings are :class:`~rust_py_rate_limit.overload.OverloadPolicy`'s
    (:class:`~rust_py_rate_limit.settings.OverloadSettings`: ``max_in_flight`` an int or
    ``"auto"``, ``queue``, ``queue_timeout``, ``order``, ``timeout``, ``priority``,
    ``concurrency_key``, ``exempt_paths``, ``shed_status``, ``timeout_status``, ``retry_after``,
    ``body``, ``timeout_body``, ``on_overloaded``...), or ``policy=`` a ready one. ``limiter=``
    (a :class:`RateLimiter`) or ``rate=`` puts a per-client rate limit in front, with
    ``rate_settings`` (a dict of :class:`RateLimitMiddleware`'s settings: ``key_func``,
    ``trusted_proxies``, ...); the overload layer's ``exempt_paths`` are exempt from both.
    ``websockets=True`` makes a WebSocket connection hold a permit while open (refused with
    close code 1013); otherwise WebSocket and lifespan traffic passes untouched.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        websockets: bool = False,
        policy: OverloadPolicy | None = None,
        limiter: RateLimiter | None = None,
        rate: str | None = None,
        rate_settings: PolicySettings | None = None,
        **settings: Unpack[OverloadSettings],
    ) -> None:
        if policy is None:
            reject_unknown(settings, OVERLOAD_SETTINGS, "OverloadMiddleware")
            policy = OverloadPolicy(**settings)
        elif not isinstance(policy, OverloadPolicy):
            raise TypeError(f"`policy` must be an OverloadPolicy, not {type(policy).__name__}")
        elif settings:
            raise TypeError(
                "give either `policy` or the settings to build one, not both "
                f"({next(iter(settings))})"
            )
        if not isinstance(websockets, bool):
            raise TypeError(f"`websockets` must be a bool, not {type(websockets).__name__}")
        self.app = app
        self.policy = policy
        self.limiter = policy.limiter
        self.websockets = websockets
        self._needs_request = policy.priority is not None or policy.concurrency_key is not None
        self._shed_headers = [
            (b"content-type", policy.shed.content_type.encode("latin-1")),
            (b"content-length", str(len(policy.shed.body)).encode("latin-1")),
            (b"retry-after", str(policy.retry_after).encode("latin-1")),
        ]
        self._timeout_headers = [
            (b"content-type", policy.timed_out.content_type.encode("latin-1")),
            (b"content-length", str(len(policy.timed_out.body)).encode("latin-1")),
        ]
        self._deadlines = None if policy.timeout is None else _DeadlineWatch(policy.timeout)
        self._exemptions = policy.has_exemptions
        self._entry: ASGIApp = self._guarded
        if limiter is not None or rate is not None:
            self._entry = RateLimitMiddleware(
                self._guarded, limiter, rate=rate, **(rate_settings or {})
            )
        elif rate_settings:
            raise TypeError("`rate_settings` apply only with `rate=` or `limiter=`")
        self._plain = (
            self._entry == self._guarded and policy.timeout is None and not self._needs_request
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if (kind != "http" and not (kind == "websocket" and self.websockets)) or (
            self._exemptions and self.policy.is_exempt_path(scope["path"])
        ):
            await self.app(scope, receive, send)
            return
        if self._plain:
            # No rate limit, no deadline, no key or priority: a free permit is taken here,
            # without an awaitable (measured: ~1 µs a request less than the general path).
            lease = self.limiter._try_grant(None)
            if lease is not None:
                try:
                    await self.app(scope, receive, send)
                finally:
                    lease.release()
                return
        await self._entry(scope, receive, send)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        policy = self.policy
        timeout = policy.timeout
        arrived = asyncio.get_running_loop().time() if timeout is not None else 0.0
        key, priority = (
            policy.key_and_priority(Request(scope)) if self._needs_request else (None, 0)
        )
        try:
            lease = await self.limiter.acquire(key, priority=priority)
        except Overloaded as error:
            await self._refuse(scope, receive, send, error)
            return
        dropped = False
        try:
            if timeout is None or scope["type"] != "http":
                await self.app(scope, receive, send)
            else:
                dropped = not await self._within(arrived + timeout, scope, receive, send)
                if dropped:
                    await self._refuse(scope, receive, send, policy.missed_deadline(key))
        finally:
            lease.release(dropped=dropped)

    async def _within(self, at: float, scope: Scope, receive: Receive, send: Send) -> bool:
        """Runs the app until done, or until ``at`` (loop time) passes with no response
        started; False when it was stopped for that."""
        task = asyncio.current_task()
        assert task is not None and self._deadlines is not None
        if task.get_loop().time() >= at:
            return False
        deadline = _Deadline(at, task)
        deadlines = self._deadlines
        deadlines.watch(deadline)

        async def send_started(message: Message) -> None:
            if message["type"] == "http.response.start":
                deadline.started = True
            await send(message)

        try:
            await self.app(scope, receive, send_started)
        except asyncio.CancelledError:
            if not deadline.expired:
                raise  # cancelled from outside (the client left, the server stops)
            uncancel = getattr(task, "uncancel", None)  # Python >= 3.11
            if uncancel is not None:
                uncancel()
            return False
        finally:
            deadlines.unwatch(deadline)
        return deadline.started or not deadline.expired

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, error: Overloaded) -> None:
        policy = self.policy
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": TRY_AGAIN_LATER})
            return
        if policy.on_overloaded is not None:
            result = policy.on_overloaded(Request(scope), error)
            if inspect.isawaitable(result):
                result = await result
            if not isinstance(result, Response):
                raise TypeError(
                    f"`on_overloaded` must return a starlette Response, not {type(result).__name__}"
                )
            _, extra = policy.refusal_for(error)
            present = {name.lower() for name, _ in result.raw_headers}
            for name, value in extra:
                if name.lower().encode() not in present:
                    result.raw_headers.append((name.lower().encode(), value.encode("latin-1")))
            await result(scope, receive, send)
            return
        refusal, _ = policy.refusal_for(error)
        shed = refusal is policy.shed
        await send(
            {
                "type": "http.response.start",
                "status": refusal.status_code,
                "headers": self._shed_headers if shed else self._timeout_headers,
            }
        )
        await send({"type": "http.response.body", "body": refusal.body})
