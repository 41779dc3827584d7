from rust_py_rate_limit import ManualClock, RateLimiter


def test_the_installed_package_limits_a_key(clock: ManualClock) -> None:
    limiter = RateLimiter(limit=2, window_seconds=1, clock=clock)
    assert [limiter.allow("k") for _ in range(3)] == [True, True, False]
    clock.advance(1)
    assert limiter.allow("k")
