"""What the overload middlewares share (Starlette/FastAPI, Django, Flask): the concurrency
limiter, who waits and who is shed, the latency SLA, and the refusals.

:class:`OverloadPolicy` holds the settings, checked once; each framework's middleware asks it
for a request's key and priority, takes a permit from its :class:`ConcurrencyLimiter`, and on
:class:`Overloaded` answers with :meth:`OverloadPolicy.refusal_for`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import Any, Literal

from ._core import ConcurrencyLimiter, ManualClock
from .exceptions import Overloaded
from .policy import Refusal, _path_matcher, check_on_blocked
from .settings import OverloadSettings, setting_names

__all__ = [
    "DEADLINE",
    "OVERLOAD_SETTINGS",
    "OverloadPolicy",
    "PriorityFunc",
]

#: ``Overloaded.reason`` of a request whose app did not start its response within ``timeout``.
DEADLINE = "deadline"

#: A callable of the request returning its priority (a small int: higher is served first and
#: shed last).
PriorityFunc = Callable[[Any], int]

#: The names :class:`OverloadPolicy` takes (``OverloadSettings``' keys).
OVERLOAD_SETTINGS: frozenset[str] = frozenset(setting_names(OverloadSettings))

SHED_BODY = {"detail": "Service overloaded, retry later"}
TIMEOUT_BODY = {"detail": "Request took too long"}


def _status(value: object, setting: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"`{setting}` must be an int, not {type(value).__name__} ({value!r})")
    if not 400 <= value <= 599:
        raise ValueError(f"`{setting}` must be an HTTP error status (4xx/5xx), not {value}")
    return value


def _seconds(value: object, setting: str, *, allow_none: bool) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"`{setting}` must be a number of seconds, not {type(value).__name__}")
    if math.isnan(value) or value <= 0 or math.isinf(value):
        raise ValueError(f"`{setting}` must be a finite number of seconds > 0, not {value!r}")
    return float(value)


class OverloadPolicy:
    """How a service sheds load: at most ``max_in_flight`` requests inside the app at once.

    - ``max_in_flight``: an int >= 1, or ``"auto"`` to learn it from latency (``adaptive``,
      ``initial_limit``, ``min_limit``, ``max_limit`` tune that); or ``concurrency``, a ready
      :class:`ConcurrencyLimiter` (then none of these settings).
    - ``name``: the name of the ConcurrencyLimiter built (its metrics' ``limiter`` label);
      default ``"concurrency:<max_in_flight>"``.
    - ``queue``, ``queue_timeout``, ``order``: how many requests wait for a slot, for how long,
      and which is served first (``"fifo"``/``"lifo"``).
    - ``timeout``: the latency SLA in seconds, queue time included; a request whose response
      has not started by then is answered ``timeout_status`` (where the framework can stop it).
    - ``priority``: a callable of the request returning an int; under overload the lowest is
      shed first and waiting requests are served highest first.
    - ``concurrency_key``: a callable of the request returning a str, for a limit per key
      (per tenant); default: one limit for the whole app.
    - ``exempt_paths``: never limited (exact, or a prefix ending in ``*``), e.g. health checks.
    - ``shed_status`` (503), ``timeout_status`` (408), ``retry_after`` (whole seconds for the
      ``Retry-After`` field of a shed request), ``body``/``timeout_body``: the refusals.
    - ``on_overloaded(request, error)``: builds the response itself; ``error`` is the
      :class:`Overloaded` (``error.reason == "deadline"`` for a missed ``timeout``).
    """

    def __init__(
        self,
        *,
        max_in_flight: int | Literal["auto"] | None = None,
        queue: int = 0,
        queue_timeout: float = 0.0,
        order: Literal["fifo", "lifo"] = "fifo",
        adaptive: Literal["gradient", "aimd"] | None = None,
        initial_limit: int | None = None,
        min_limit: int | None = None,
        max_limit: int | None = None,
        name: str | None = None,
        concurrency: ConcurrencyLimiter | None = None,
        clock: ManualClock | None = None,
        timeout: float | None = None,
        priority: PriorityFunc | None = None,
        concurrency_key: Callable[[Any], str] | None = None,
        exempt_paths: Iterable[str] = (),
        shed_status: int = 503,
        timeout_status: int = 408,
        retry_after: int = 1,
        body: Any = None,
        timeout_body: Any = None,
        on_overloaded: Callable[[Any, Overloaded], Any] | None = None,
    ) -> None:
        if concurrency is not None:
            if not isinstance(concurrency, ConcurrencyLimiter):
                raise TypeError(
                    f"`concurrency` must be a ConcurrencyLimiter, not {type(concurrency).__name__}"
                )
            given = {
                "max_in_flight": max_in_flight,
                "adaptive": adaptive,
                "initial_limit": initial_limit,
                "min_limit": min_limit,
                "max_limit": max_limit,
                "name": name,
                "clock": clock,
            }
            named = [name for name, value in given.items() if value is not None]
            if queue or queue_timeout or order != "fifo":
                named.append("queue, queue_timeout or order")
            if named:
                raise TypeError(
                    f"give either `concurrency` or the settings to build one, not both ({named[0]})"
                )
            self.limiter = concurrency
        else:
            if max_in_flight is None:
                raise TypeError("give `max_in_flight` (an int >= 1 or 'auto') or `concurrency`")
            self.limiter = ConcurrencyLimiter(
                max_in_flight,
                queue=queue,
                queue_timeout=queue_timeout,
                order=order,
                clock=clock,
                adaptive=adaptive,
                initial_limit=initial_limit,
                min_limit=min_limit,
                max_limit=max_limit,
                name=name,
            )
        #: The clock queue waits and ``timeout`` are measured on: ``clock`` when given (a
        #: ManualClock, for tests), else the monotonic clock.
        self.now: Callable[[], float] = time.monotonic if clock is None else clock.now
        self.timeout = _seconds(timeout, "timeout", allow_none=True)
        if self.timeout is not None and self.limiter.queue_timeout > self.timeout:
            raise ValueError(
                f"`queue_timeout` ({self.limiter.queue_timeout}) must not exceed `timeout` "
                f"({self.timeout}): the time a request waits counts against its timeout"
            )
        for name, func in (("priority", priority), ("concurrency_key", concurrency_key)):
            if func is not None and not callable(func):
                raise TypeError(f"`{name}` must be callable, not {type(func).__name__}")
        self.priority = priority
        self.concurrency_key = concurrency_key
        exempt = (exempt_paths,) if isinstance(exempt_paths, str) else tuple(exempt_paths)
        self.is_exempt_path = _path_matcher(exempt)
        self.has_exemptions = bool(exempt)
        if isinstance(retry_after, bool) or not isinstance(retry_after, int):
            raise TypeError(f"`retry_after` must be an int, not {type(retry_after).__name__}")
        if retry_after < 0:
            raise ValueError(f"`retry_after` must be >= 0 seconds, not {retry_after}")
        self.retry_after = retry_after
        self.shed = Refusal(
            _status(shed_status, "shed_status"), SHED_BODY if body is None else body
        )
        timeout_status = _status(timeout_status, "timeout_status")
        try:
            self.timed_out = Refusal(
                timeout_status, TIMEOUT_BODY if timeout_body is None else timeout_body
            )
        except TypeError as exc:  # Refusal names its body `body`: here it is `timeout_body`
            raise TypeError(str(exc).replace("`body`", "`timeout_body`", 1)) from None
        self.on_overloaded = check_on_blocked(
            on_overloaded, "`on_overloaded`", "on_overloaded(request, error)"
        )

    def exempt(self, path: str) -> bool:
        return self.has_exemptions and self.is_exempt_path(path)

    def key_and_priority(self, request: Any) -> tuple[str | None, int]:
        """The request's concurrency key (None: the app's one limit) and priority."""
        key = None
        if self.concurrency_key is not None:
            key = self.concurrency_key(request)
            if not isinstance(key, str):
                raise TypeError(
                    f"`concurrency_key` must return a str, not {type(key).__name__} ({key!r})"
                )
        priority = 0
        if self.priority is not None:
            priority = self.priority(request)
            if isinstance(priority, bool) or not isinstance(priority, int):
                raise TypeError(
                    f"`priority` must return an int, not {type(priority).__name__} ({priority!r})"
                )
        return key, priority

    def refusal_for(self, error: Overloaded) -> tuple[Refusal, list[tuple[str, str]]]:
        """The refusal for an overloaded request and its extra header fields: a shed request
        gets ``Retry-After``; a missed deadline does not (the next try may well succeed)."""
        if error.reason == DEADLINE:
            return self.timed_out, []
        return self.shed, [("Retry-After", str(self.retry_after))]

    def missed_deadline(self, key: str | None) -> Overloaded:
        """Counts a request that missed ``timeout`` (``stats()["deadline_missed"]``) and
        returns its :class:`Overloaded`."""
        self.limiter._note_deadline_missed()
        status = self.limiter.status(key)
        return Overloaded(
            key,
            limit=status["limit"],
            reason=DEADLINE,
            in_flight=status["in_flight"],
            queued=status["queued"],
            retry_after=0.0,
        )
