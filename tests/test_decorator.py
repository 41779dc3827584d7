"""``RateLimiter.limit`` and ``rate_limit``: rate-limited plain and ``async def`` callables."""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Callable
from typing import Any

import pytest

from rust_py_rate_limit import ManualClock, RateLimiter, RateLimitExceeded, rate_limit


@pytest.fixture
def limiter(clock: ManualClock) -> RateLimiter:
    """Two calls per 10 s."""
    return RateLimiter(2, 10, clock=clock)


def test_a_fixed_key_limits_every_call(limiter: RateLimiter, clock: ManualClock) -> None:
    calls: list[str] = []

    @limiter.limit("login")
    def login(user: str) -> str:
        calls.append(user)
        return f"welcome {user}"

    assert login("ann") == "welcome ann"
    assert login("bob") == "welcome bob"
    with pytest.raises(RateLimitExceeded):
        login("cy")
    assert calls == ["ann", "bob"], "a refused call does not run"
    assert limiter.remaining("login") == 0
    clock.advance(10)
    assert login("cy") == "welcome cy"


def test_the_exception_describes_the_refusal(limiter: RateLimiter, clock: ManualClock) -> None:
    @limiter.limit("login")
    def login() -> None:
        pass

    login()
    clock.advance(2.5)
    login()
    with pytest.raises(RateLimitExceeded) as excinfo:
        login()
    error = excinfo.value
    assert isinstance(error, Exception)
    assert (error.key, error.limit, error.remaining) == ("login", 2, 0)
    assert type(error.retry_after) is float
    assert error.retry_after == pytest.approx(7.5)
    assert str(error) == "rate limit exceeded for key 'login' (limit=2); retry after 7.500s"


def test_the_exception_says_never_for_a_cost_above_the_capacity(limiter: RateLimiter) -> None:
    @limiter.limit("bulk", cost=3)
    def bulk() -> None:
        pass

    with pytest.raises(RateLimitExceeded, match=r"key 'bulk' \(limit=2\); never") as excinfo:
        bulk()
    assert excinfo.value.retry_after == math.inf
    assert excinfo.value.remaining == 2


def test_a_key_function_gets_the_call_arguments(limiter: RateLimiter) -> None:
    @limiter.limit(lambda user_id, **_: f"user:{user_id}")
    def fetch(user_id: int, *, page: int = 1) -> tuple[int, int]:
        return (user_id, page)

    assert fetch(1) == (1, 1)
    assert fetch(1, page=2) == (1, 2)
    assert fetch(user_id=2) == (2, 1)
    with pytest.raises(RateLimitExceeded) as excinfo:
        fetch(1, page=3)
    assert excinfo.value.key == "user:1"
    assert fetch(2) == (2, 1), "each user has their own limit"
    assert limiter.remaining("user:1") == 0
    assert limiter.remaining("user:2") == 0
    assert limiter.stats()["active_keys"] == 2


def test_the_documented_lambda_key(limiter: RateLimiter) -> None:
    @limiter.limit(lambda user_id: f"user:{user_id}")
    def profile(user_id: int) -> str:
        return f"profile {user_id}"

    assert [profile(7), profile(7)] == ["profile 7", "profile 7"]
    with pytest.raises(RateLimitExceeded, match=r"'user:7'"):
        profile(7)
    assert profile(8) == "profile 8"


def test_cost_consumes_that_many(clock: ManualClock) -> None:
    limiter = RateLimiter(5, 10, clock=clock)

    @limiter.limit("export", cost=2)
    def export() -> str:
        return "done"

    assert [export(), export()] == ["done", "done"]
    assert limiter.remaining("export") == 1
    with pytest.raises(RateLimitExceeded) as excinfo:
        export()
    assert (excinfo.value.limit, excinfo.value.remaining) == (5, 1)
    assert limiter.remaining("export") == 1, "the refused call consumed nothing"


def test_on_blocked_is_called_with_the_same_arguments(limiter: RateLimiter) -> None:
    fallbacks: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def fallback(*args: Any, **kwargs: Any) -> str:
        fallbacks.append((args, kwargs))
        return "try later"

    @limiter.limit("search", on_blocked=fallback)
    def search(query: str, *, limit: int = 10) -> str:
        return f"results for {query}"

    assert search("a") == "results for a"
    assert search("b", limit=5) == "results for b"
    assert search("c", limit=3) == "try later"
    assert search("d") == "try later"
    assert fallbacks == [(("c",), {"limit": 3}), (("d",), {})]
    assert limiter.stats()["blocked"] == 2


def test_on_blocked_may_raise_its_own_error(limiter: RateLimiter) -> None:
    class Busy(Exception):
        pass

    def fallback() -> None:
        raise Busy

    @limiter.limit("k", on_blocked=fallback)
    def work() -> int:
        return 1

    assert work() + work() == 2
    with pytest.raises(Busy):
        work()


def test_wraps_keeps_the_metadata(limiter: RateLimiter) -> None:
    def original(a: int, b: str = "x") -> str:
        """The docstring."""
        return f"{a}{b}"

    wrapped = limiter.limit("k")(original)
    assert wrapped is not original
    assert wrapped.__name__ == "original"
    assert wrapped.__qualname__ == original.__qualname__
    assert wrapped.__doc__ == "The docstring."
    assert wrapped.__module__ == original.__module__
    assert wrapped.__wrapped__ is original  # type: ignore[attr-defined]
    assert inspect.signature(wrapped) == inspect.signature(original)
    assert not inspect.iscoroutinefunction(wrapped)


def test_async_functions_stay_coroutine_functions(limiter: RateLimiter) -> None:
    async def original(x: int) -> int:
        """Async docstring."""
        await asyncio.sleep(0)
        return x * 2

    wrapped = limiter.limit("k")(original)
    assert inspect.iscoroutinefunction(wrapped)
    assert wrapped.__name__ == "original"
    assert wrapped.__doc__ == "Async docstring."
    assert wrapped.__wrapped__ is original  # type: ignore[attr-defined]


def test_async_function_is_limited(limiter: RateLimiter, clock: ManualClock) -> None:
    ran: list[int] = []

    @limiter.limit(lambda n: f"job:{n % 2}")
    async def job(n: int) -> int:
        await asyncio.sleep(0)
        ran.append(n)
        return n

    async def main() -> list[int | str]:
        results: list[int | str] = []
        for n in range(6):
            try:
                results.append(await job(n))
            except RateLimitExceeded as error:
                results.append(error.key)
        return results

    assert asyncio.run(main()) == [0, 1, 2, 3, "job:0", "job:1"]
    assert ran == [0, 1, 2, 3]
    clock.advance(10)
    assert asyncio.run(job(4)) == 4


def test_a_refused_async_call_raises_when_awaited_not_when_called(limiter: RateLimiter) -> None:
    @limiter.limit("k")
    async def job() -> str:
        return "ok"

    async def main() -> None:
        assert await job() == "ok"
        assert await job() == "ok"
        pending = job()  # creating the coroutine decides nothing yet
        assert limiter.stats()["total_checks"] == 2
        with pytest.raises(RateLimitExceeded):
            await pending

    asyncio.run(main())


def test_async_on_blocked_is_awaited(limiter: RateLimiter) -> None:
    async def fallback(name: str) -> str:
        await asyncio.sleep(0)
        return f"later, {name}"

    @limiter.limit("greet", on_blocked=fallback)
    async def greet(name: str) -> str:
        return f"hello {name}"

    async def main() -> list[str]:
        return [await greet(name) for name in ("a", "b", "c", "d")]

    assert asyncio.run(main()) == ["hello a", "hello b", "later, c", "later, d"]


def test_a_sync_on_blocked_works_for_an_async_function(limiter: RateLimiter) -> None:
    @limiter.limit("greet", on_blocked=lambda name: f"later, {name}")
    async def greet(name: str) -> str:
        return f"hello {name}"

    async def main() -> list[str]:
        return [await greet(name) for name in ("a", "b", "c")]

    assert asyncio.run(main()) == ["hello a", "hello b", "later, c"]


@pytest.mark.parametrize("use_method", [True, False], ids=["limiter.limit", "rate_limit"])
def test_rate_limit_function_equals_the_method(
    use_method: bool, limiter: RateLimiter, clock: ManualClock
) -> None:
    def make(key: Any, **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return limiter.limit(key, **options) if use_method else rate_limit(limiter, key, **options)

    @make("k", cost=1)
    def a() -> str:
        return "a"

    @make(lambda: "k")
    def b() -> str:
        return "b"

    @make("k", on_blocked=lambda: "blocked")
    def c() -> str:
        return "c"

    assert [a(), b(), c()] == ["a", "b", "blocked"]
    with pytest.raises(RateLimitExceeded):
        a()
    clock.advance(10)
    assert c() == "c"


def test_rate_limit_as_a_plain_function_call(limiter: RateLimiter) -> None:
    def ping() -> str:
        return "pong"

    limited = rate_limit(limiter, "ping")(ping)
    assert [limited(), limited()] == ["pong", "pong"]
    with pytest.raises(RateLimitExceeded):
        limited()
    assert ping() == "pong", "the original is untouched"


def test_methods_can_be_limited_per_instance(limiter: RateLimiter) -> None:
    class Client:
        def __init__(self, name: str) -> None:
            self.name = name

        @limiter.limit(lambda self: f"client:{self.name}")
        def call(self) -> str:
            return self.name

    a, b = Client("a"), Client("b")
    assert [a.call(), a.call(), b.call()] == ["a", "a", "b"]
    with pytest.raises(RateLimitExceeded, match="client:a"):
        a.call()


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("returned", [123, None, b"user", ["k"]])
def test_a_key_function_returning_a_non_str_is_a_type_error(
    returned: object, limiter: RateLimiter
) -> None:
    def key() -> Any:  # deliberately not returning a str
        return returned

    @limiter.limit(key)
    def work() -> None:
        pass

    with pytest.raises(TypeError, match=r"the key function \(`key`\) must return a str, not"):
        work()
    assert limiter.stats()["total_checks"] == 0


def test_a_key_function_returning_a_non_str_is_a_type_error_for_async(
    limiter: RateLimiter,
) -> None:
    def key() -> Any:
        return 42

    @limiter.limit(key)
    async def work() -> None:
        pass

    with pytest.raises(TypeError, match=r"the key function \(`key`\) must return a str, not int"):
        asyncio.run(work())


@pytest.mark.parametrize(
    ("key", "options", "error", "message"),
    [
        ("k", {"cost": 0}, ValueError, r"`cost` must be at least 1, got 0"),
        ("k", {"cost": -2}, ValueError, r"`cost` must be at least 1, got -2"),
        ("k", {"cost": True}, TypeError, r"`cost` must be an int, not bool"),
        ("k", {"cost": 1.5}, TypeError, r"`cost` must be an int, not float"),
        ("k", {"cost": "2"}, TypeError, r"`cost` must be an int, not str"),
        (123, {}, TypeError, r"`key` must be a str or a callable returning one, not int"),
        (None, {}, TypeError, r"`key` must be a str or a callable returning one, not NoneType"),
        (b"k", {}, TypeError, r"`key` must be a str or a callable returning one, not bytes"),
        ("k", {"on_blocked": 42}, TypeError, r"`on_blocked` must be callable, not int"),
        ("k", {"on_blocked": "fallback"}, TypeError, r"`on_blocked` must be callable, not str"),
    ],
)
@pytest.mark.parametrize("use_method", [True, False], ids=["limiter.limit", "rate_limit"])
def test_bad_decorator_arguments_fail_at_decoration(
    key: Any,
    options: dict[str, Any],
    error: type[Exception],
    message: str,
    use_method: bool,
    limiter: RateLimiter,
) -> None:
    with pytest.raises(error, match=message):
        if use_method:
            limiter.limit(key, **options)
        else:
            rate_limit(limiter, key, **options)


def test_limit_takes_cost_and_on_blocked_by_keyword_only(limiter: RateLimiter) -> None:
    with pytest.raises(TypeError):
        limiter.limit("k", 2)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        rate_limit(limiter, "k", 2)  # type: ignore[call-arg]


# --- the async wrapper awaits the limiter; mistakes caught where the decorator is written ------


def test_the_async_wrapper_awaits_a_redis_round_trip_without_blocking_the_loop() -> None:
    """With the server frozen (SIGSTOP) the decision waits for its timeout; a ticker task on
    the same loop must keep ticking meanwhile. Calling the blocking ``decide`` (as the wrapper
    once did) stalls the loop, and the ticker sees nothing."""
    import os
    import signal

    from redis_support import RedisServer

    server = RedisServer().start()
    assert server.process is not None
    try:
        limiter = RateLimiter(5, 60, storage=server.url, timeout=0.5, on_storage_error="allow")
        assert limiter.allow("warm-up")  # the connection is open before the freeze

        @limiter.limit("k")
        async def work() -> str:
            return "done"

        async def main() -> tuple[str, int]:
            ticks = 0
            finished = asyncio.Event()

            async def ticker() -> None:
                nonlocal ticks
                while not finished.is_set():
                    await asyncio.sleep(0.01)
                    ticks += 1

            task = asyncio.create_task(ticker())
            await asyncio.sleep(0)  # the ticker is running before the call
            result = await work()
            finished.set()
            await task
            return result, ticks

        os.kill(server.process.pid, signal.SIGSTOP)
        try:
            result, ticks = asyncio.run(main())
        finally:
            os.kill(server.process.pid, signal.SIGCONT)
    finally:
        server.close()
    assert result == "done"  # on_storage_error="allow" after the timeout
    assert ticks >= 10, f"the event loop was blocked: {ticks} ticks in a 0.5 s wait"


def test_rate_limit_checks_its_limiter_where_it_is_written() -> None:
    with pytest.raises(TypeError, match=r"RateLimiter, not str \('5/minute'\).*from_rate"):
        rate_limit("5/minute", "k")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="RateLimiter, not NoneType"):
        rate_limit(None, "k")  # type: ignore[arg-type]


def test_a_key_that_reads_as_a_rate_warns_once(limiter: RateLimiter) -> None:
    with pytest.warns(UserWarning, match=r"'7/minute' reads as a rate.*Limiter\(\.\.\.\)\.limit"):
        limiter.limit("7/minute")(lambda: None)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        limiter.limit("7/minute")(lambda: None)  # once per key string
        limiter.limit("user:7")(lambda: None)  # an ordinary key: no warning
