"""Quick start: rate-limit anything in a Python process, no server needed.

Run with:  python examples/quickstart.py
"""

from __future__ import annotations

from rust_py_rate_limit import ManualClock, RateLimiter, RateLimitExceeded


def main() -> None:
    # 5 requests per 10 seconds per key, fixed window (the default algorithm).
    limiter = RateLimiter(limit=5, window_seconds=10)
    results = [limiter.allow("user:42") for _ in range(7)]
    print("user:42, 7 requests:", results)
    print("another key is independent:", limiter.allow("user:43"))
    print("check():", limiter.check("user:42"))

    # GCRA with a burst of 2 and a 1-request-per-second rate; a manual clock instead of sleeping.
    clock = ManualClock()
    smooth = RateLimiter(limit=1, window_seconds=1, algorithm="gcra", burst=2, clock=clock)
    print("gcra burst:", [smooth.allow("api") for _ in range(3)])
    decision = smooth.decide("api")
    print(f"denied, retry after {decision.retry_after:.1f}s")
    clock.advance(decision.retry_after)
    print("after waiting:", smooth.allow("api"))

    # Several rates at once: every one must admit the request.
    layered = RateLimiter.from_rate("2/second; 3/minute", algorithm="sliding", clock=clock)
    print("2/second; 3/minute:", [layered.allow("ip:203.0.113.7") for _ in range(3)])
    clock.advance(2)  # the per-second rate has fully recovered; the minute has 1 request left
    print("two seconds later:", [layered.allow("ip:203.0.113.7") for _ in range(2)])
    print("the minute rate binds:", layered.decide("ip:203.0.113.7"))

    # The decorator raises RateLimitExceeded (or calls on_blocked) when the limit is hit.
    login_limiter = RateLimiter(limit=1, window_seconds=60)

    @login_limiter.limit(lambda username: f"login:{username}")
    def login(username: str) -> str:
        return f"welcome {username}"

    print(login("ada"))
    try:
        login("ada")
    except RateLimitExceeded as exc:
        print(f"blocked: {exc}")

    print("stats:", limiter.stats())


if __name__ == "__main__":
    main()
