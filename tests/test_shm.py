"""``storage="shm://NAME"``: one exact limit across the processes of a host.

- The shared store decides as the in-memory one on the same sequences (hypothesis, ManualClock).
- 4 processes x 4 threads, started with fork and with spawn, admit exactly the limit for every
  algorithm.
- Full tables (``on_full``), expired state reused in place, limiters of other settings apart.
- Bad regions (symlink, other mode, corrupted, truncated) are refused naming the path.
- Processes SIGKILLed at random instants (hundreds of times) leave a table where nothing hangs,
  every count matches the admissions reported, and the table check passes.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import pathlib
import random
import signal
import time
from collections.abc import Iterator

import pytest
import shm_worker
from hypothesis import given, settings
from hypothesis import strategies as st

from rust_py_rate_limit import ManualClock, RateLimiter, StorageError

ALGORITHMS = ["fixed", "sliding", "token_bucket", "leaky_bucket", "gcra"]


@pytest.fixture
def shm_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    """A private directory for the test's tables (``path=``), instead of /dev/shm."""
    directory = tmp_path / "shm"
    directory.mkdir(mode=0o700)
    return directory


def url(directory: pathlib.Path, name: str, **options: object) -> str:
    query = "&".join(f"{k}={v}" for k, v in {**options, "path": directory}.items())
    return f"shm://{name}?{query}"


def test_a_shared_limiter_has_the_memory_api(shm_dir: pathlib.Path) -> None:
    where = url(shm_dir, "api", capacity=1000)
    limiter = RateLimiter.from_rate("3/minute", storage=where)
    assert limiter.storage == where
    assert limiter.on_full == "reject"
    assert repr(limiter) == (
        f'RateLimiter(limit=3, window_seconds=60, algorithm="fixed", storage="{where}")'
    )
    assert [limiter.allow("u") for _ in range(4)] == [True, True, True, False]
    assert bool(limiter.decide("v")) and limiter.check("v")["remaining"] == 1
    assert limiter.peek("v").remaining == 0, "peek answers as decide would, consuming nothing"
    assert limiter.remaining("v") == 1
    assert asyncio.run(limiter.aallow("v")) is True
    assert asyncio.run(limiter.adecide("v")).allowed is False
    assert limiter.stats() == {
        "name": limiter.name,
        "allowed": 6,
        "blocked": 2,
        "total_checks": 8,
        "active_keys": 2,
        "rejected_full": 0,
        "evicted": 0,
        "storage_errors": 0,
    }
    other = limiter.with_rate("3/minute")
    assert other.storage == where and not other.allow("u"), "the same settings share the key"
    assert limiter.reset("u") is True and other.allow("u")
    limiter.clear()
    assert limiter.stats()["active_keys"] == 0
    limiter._check_shared_table()
    with pytest.raises(TypeError, match="not a shm:// limiter"):
        RateLimiter(1, 1)._check_shared_table()


def steps(most: int, max_size: int = 60) -> st.SearchStrategy[list[tuple[str, int, int]]]:
    """Operations on four keys: (what, key number, cost or clock ticks up to ``most``)."""
    return st.lists(
        st.tuples(
            st.sampled_from(["decide", "peek", "advance", "reset"]),
            st.integers(0, 3),
            st.integers(1, most),
        ),
        max_size=max_size,
    )


STEPS = steps(14)


def replay(
    memory: RateLimiter,
    shared: RateLimiter,
    clock: ManualClock,
    steps: list[tuple[str, int, int]],
    tick: float,
) -> None:
    """Runs ``steps`` on both limiters (``advance`` moves the clock by ``amount * tick``
    seconds), asserting that every answer and the counts agree, then checks the table."""
    for op, key_number, amount in steps:
        key = f"k{key_number}"
        if op == "advance":
            clock.advance(amount * tick)
        elif op == "reset":
            memory.reset(key)
            shared.reset(key)
        elif op == "peek":
            assert shared.peek(key, amount) == memory.peek(key, amount)
        else:
            assert shared.decide(key, amount) == memory.decide(key, amount)
    assert shared.stats()["allowed"] == memory.stats()["allowed"]
    assert shared.stats()["blocked"] == memory.stats()["blocked"]
    shared._check_shared_table()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@settings(max_examples=40, deadline=None)
@given(limit=st.integers(1, 12), window=st.sampled_from([1, 2.5, 60]), steps=STEPS)
def test_the_shared_store_decides_as_memory_does(
    tmp_path_factory: pytest.TempPathFactory,
    algorithm: str,
    limit: int,
    window: float,
    steps: list[tuple[str, int, int]],
) -> None:
    where = url(tmp_path_factory.mktemp("shm"), "model")
    clock = ManualClock(1000)
    memory = RateLimiter(limit, window, algorithm, clock=clock)
    shared = RateLimiter(limit, window, algorithm, clock=clock, storage=where)
    replay(memory, shared, clock, steps, window / 7)
    RateLimiter.destroy_shared(where)


SEVERAL_RATES = [
    "2/second; 5/minute",
    "3/2 seconds; 4/10 seconds; 9/minute",
    "4/second; 3/5 seconds; 8/10 seconds; 9/minute",
]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@settings(max_examples=30, deadline=None)
@given(rate=st.sampled_from(SEVERAL_RATES), steps=STEPS)
def test_several_rates_in_shared_memory_decide_as_in_memory(
    tmp_path_factory: pytest.TempPathFactory,
    algorithm: str,
    rate: str,
    steps: list[tuple[str, int, int]],
) -> None:
    where = url(tmp_path_factory.mktemp("shm"), "rates")
    clock = ManualClock(1000)
    memory = RateLimiter.from_rate(rate, algorithm, clock=clock)
    shared = RateLimiter.from_rate(rate, algorithm, clock=clock, storage=where)
    replay(memory, shared, clock, steps, 1.3)
    RateLimiter.destroy_shared(where)


@pytest.mark.parametrize("rate", ["70000/2 seconds", "100000/second; 70000/3 seconds"])
@settings(max_examples=30, deadline=None)
@given(steps=steps(40_000, max_size=40))
def test_sliding_windows_counting_past_65535_in_shared_memory_decide_as_in_memory(
    tmp_path_factory: pytest.TempPathFactory, rate: str, steps: list[tuple[str, int, int]]
) -> None:
    where = url(tmp_path_factory.mktemp("shm"), "wide")
    clock = ManualClock(1000)
    memory = RateLimiter.from_rate(rate, "sliding", clock=clock)
    shared = RateLimiter.from_rate(rate, "sliding", clock=clock, storage=where)
    replay(memory, shared, clock, steps, 1 / 40_000)
    RateLimiter.destroy_shared(where)


def hammer_from_four_processes(where: str, rate: str, algorithm: str, start_method: str) -> int:
    """4 processes started with ``start_method``, 4 threads each, 100 tries each on one key:
    the admissions in all."""
    context = multiprocessing.get_context(start_method)
    queue = context.Queue()
    processes = [
        context.Process(target=shm_worker.hammer, args=(where, rate, algorithm, 4, 100, queue))
        for _ in range(4)
    ]
    for p in processes:
        p.start()
    admitted = [queue.get(timeout=60) for _ in processes]
    for p in processes:
        p.join(timeout=30)
        assert p.exitcode == 0
    return sum(admitted)


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
@pytest.mark.parametrize("algorithm", ["fixed", "sliding", "gcra"])
def test_four_processes_of_four_threads_admit_exactly_the_tightest_of_several_rates(
    shm_dir: pathlib.Path, start_method: str, algorithm: str
) -> None:
    where = url(shm_dir, f"rates-{start_method}-{algorithm}")
    rate = "500/hour; 300/day; 900/month"
    assert hammer_from_four_processes(where, rate, algorithm, start_method) == 300
    after = RateLimiter.from_rate(rate, algorithm, storage=where).peek("hot")
    assert (after.allowed, after.limit, after.remaining) == (False, 300, 0)


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_four_processes_of_four_threads_admit_exactly_the_limit(
    shm_dir: pathlib.Path, start_method: str, algorithm: str
) -> None:
    where = url(shm_dir, f"exact-{start_method}-{algorithm}")
    assert hammer_from_four_processes(where, "300/hour", algorithm, start_method) == 300
    # ... while every process's own memory:// limiter would have admitted up to 300 each
    assert RateLimiter.from_rate("300/hour", algorithm, storage=where).allow("hot") is False


@pytest.mark.parametrize("on_full", ["reject", "evict"])
def test_a_full_table_rejects_or_evicts_and_expired_state_is_reused_in_place(
    shm_dir: pathlib.Path, clock: ManualClock, on_full: str
) -> None:
    # capacity=11 is one bucket of 15 slots: 15 keys fill it
    limiter = RateLimiter.from_rate(
        "2/minute", storage=url(shm_dir, "full", capacity=11), clock=clock, on_full=on_full
    )
    assert limiter.on_full == on_full
    for i in range(15):
        assert limiter.allow(f"k{i}")
        clock.advance(1)
    newcomer = limiter.decide("new")
    stats = limiter.stats()
    if on_full == "reject":
        assert not newcomer.allowed and newcomer.retry_after == 60
        assert (stats["rejected_full"], stats["evicted"]) == (1, 0)
        assert limiter.remaining("k0") == 1, "no live key lost its state"
    else:
        assert newcomer.allowed
        assert (stats["rejected_full"], stats["evicted"]) == (0, 1)
        assert limiter.remaining("k14") == 1, "the state expiring first went, not the newest"
    clock.advance(120)
    for i in range(15):
        assert limiter.allow(f"fresh{i}"), "expired states are taken over with no sweep"
    after = limiter.stats()
    assert (after["rejected_full"], after["evicted"]) == (stats["rejected_full"], stats["evicted"])
    limiter._check_shared_table()


def test_memory_takes_on_full_too(clock: ManualClock) -> None:
    rejecting = RateLimiter.from_rate("2/minute", max_keys=3, clock=clock)
    evicting = RateLimiter.from_rate("2/minute", max_keys=3, clock=clock, on_full="evict")
    assert repr(evicting).endswith(', max_keys=3, on_full="evict")')
    for limiter in (rejecting, evicting):
        for key in "abc":
            assert limiter.allow(key)
            clock.advance(1)
        assert limiter.allow("b")
    assert not rejecting.allow("d"), "a flood of new keys locks newcomers out until expiry"
    assert evicting.allow("d"), "... or forgets the state that expires first"
    assert (rejecting.stats()["rejected_full"], rejecting.stats()["evicted"]) == (1, 0)
    assert (evicting.stats()["rejected_full"], evicting.stats()["evicted"]) == (0, 1)
    assert evicting.remaining("a") == 2, "a (the oldest window) went"
    assert evicting.remaining("b") == 0, "b kept its count"


def test_limiters_of_other_settings_in_one_table_never_share_a_state(shm_dir: pathlib.Path) -> None:
    where = url(shm_dir, "mixed")
    one = RateLimiter.from_rate("1/minute", storage=where)
    two = RateLimiter.from_rate("2/minute", storage=where)
    gcra = RateLimiter.from_rate("1/minute", "gcra", storage=where)
    assert one.allow("k") and not one.allow("k")
    assert two.allow("k") and two.allow("k") and not two.allow("k")
    assert gcra.allow("k") and not gcra.allow("k")


def test_settings_that_do_not_apply_and_bad_urls_are_refused_by_name(shm_dir: pathlib.Path) -> None:
    where = url(shm_dir, "refused", capacity=100)
    for kwargs, message in [
        (
            {"storage": "shm://x?capacity=0"},
            'capacity must be a whole number of keys from 1 to 4294967296, got "0"',
        ),
        ({"storage": "shm://a b"}, 'got "a b"'),
        ({"storage": "shm://x?size=3"}, 'unknown option "size"'),
        ({"storage": where, "key_prefix": "p"}, "`key_prefix` only applies with a Redis"),
        ({"storage": where, "fallback": "memory"}, "`fallback` only applies with a Redis"),
        ({"storage": where, "cleanup_interval": 1}, "`cleanup_interval` does not apply to shm://"),
        (
            {"storage": where, "max_keys": 5},
            r"`max_keys` \(5\) and the URL's capacity \(100\) disagree",
        ),
        (
            {"storage": where, "on_full": "drop"},
            "`on_full` must be 'reject' or 'evict', got \"drop\"",
        ),
    ]:
        with pytest.raises(ValueError, match=message):
            RateLimiter.from_rate("3/minute", **kwargs)
    with pytest.raises(TypeError, match="`on_full` must be 'reject' or 'evict', not int"):
        RateLimiter.from_rate("3/minute", storage=where, on_full=1)
    with pytest.raises(ValueError, match="at most 4 rates, got 5"):
        RateLimiter.from_rate("1/second; 2/minute; 3/hour; 4/day; 5/month", storage=where)
    assert not (shm_dir / "rprl-refused").exists(), "settings are checked before a table is made"
    assert RateLimiter.from_rate("3/minute", storage=where).allow("k")
    with pytest.raises(
        StorageError, match=f"{shm_dir}/rprl-refused: it exists with room for 101 keys, not 5000"
    ):
        RateLimiter.from_rate("3/minute", storage=url(shm_dir, "refused", capacity=5000))
    wide = RateLimiter.from_rate("70000/minute", "sliding", storage=where)
    assert wide.allow("k", 70_000) and not wide.allow("k"), "a sliding window past 65,535"
    assert RateLimiter.from_rate("3/minute", storage=where, max_keys=100).allow("k")
    assert RateLimiter.from_rate("3/minute", storage=url(shm_dir, "sized"), max_keys=50).allow("k")


def test_bad_regions_are_refused_naming_the_path(shm_dir: pathlib.Path) -> None:
    good = url(shm_dir, "good", capacity=100)
    RateLimiter.from_rate("3/minute", storage=good).allow("k")
    file = shm_dir / "rprl-good"
    cases = {
        "symlink": "symbolic link",
        "mode": "its mode is 644",
        "corrupted": "checksum does not match",
        "truncated": "truncated",
        "foreign": "bad magic",
    }
    for case, message in cases.items():
        target = shm_dir / f"rprl-{case}"
        if case == "symlink":
            target.symlink_to(file)
        else:
            data = bytearray(file.read_bytes())
            if case == "corrupted":
                data[30] ^= 0xFF
            elif case == "truncated":
                data = data[:1000]
            elif case == "foreign":
                data[:8] = b"NOTOURS!"
            target.write_bytes(bytes(data))
            target.chmod(0o644 if case == "mode" else 0o600)
        with pytest.raises(StorageError, match=f"{target}: .*{message}"):
            RateLimiter.from_rate("3/minute", storage=url(shm_dir, case))


def test_destroy_shared_removes_a_table_and_limiters_made_later_start_afresh(
    shm_dir: pathlib.Path,
) -> None:
    where = url(shm_dir, "gone")
    first = RateLimiter.from_rate("1/minute", storage=where)
    assert first.allow("k")
    assert RateLimiter.from_rate("1/minute; 5/hour", storage=where).allow("k")
    assert (shm_dir / "rprl-gone+2words").exists()
    assert RateLimiter.destroy_shared(where) is True
    assert RateLimiter.destroy_shared(where) is False
    assert not (shm_dir / "rprl-gone").exists()
    assert not (shm_dir / "rprl-gone+2words").exists()
    assert RateLimiter.from_rate("1/minute", storage=where).allow("k"), "a new, empty table"
    with pytest.raises(ValueError, match="region name"):
        RateLimiter.destroy_shared("../etc")
    with pytest.raises(TypeError, match="`name` must be a str"):
        RateLimiter.destroy_shared(3)  # type: ignore[arg-type]


@pytest.fixture
def killed_workers(shm_dir: pathlib.Path) -> Iterator[list[int]]:
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def test_workers_killed_at_random_instants_leave_a_consistent_table(
    shm_dir: pathlib.Path, killed_workers: list[int]
) -> None:
    counted, churn = url(shm_dir, "counted"), url(shm_dir, "churn", capacity=40)
    RateLimiter.from_rate("1/hour", storage=counted)  # made once, before the forks
    RateLimiter.from_rate("1/hour; 2/day", storage=counted)
    reader, writer = os.pipe()
    os.set_blocking(reader, False)
    rng = random.Random(11)
    reported = [0] * 8  # four keys of one rate, then four of two
    kills = 0
    deadline = time.monotonic() + 30

    def drain() -> None:
        while True:
            try:
                data = os.read(reader, 65536)
            except BlockingIOError:
                return
            if not data:  # every writer closed
                return
            for key in data:
                reported[key] += 1

    running: list[int] = []
    while kills < 300 and time.monotonic() < deadline:
        while len(running) < 4:
            pid = os.fork()
            if pid == 0:
                os.close(reader)
                try:
                    shm_worker.churn_until_killed(counted, churn, writer, rng.randrange(1 << 32))
                finally:
                    os._exit(1)
            running.append(pid)
            killed_workers.append(pid)
        time.sleep(rng.uniform(0, 0.004))
        victim = running.pop(rng.randrange(len(running)))
        os.kill(victim, signal.SIGKILL)
        os.waitpid(victim, 0)
        kills += 1
        drain()
    for pid in running:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        kills += 1
    os.close(writer)
    drain()
    os.close(reader)
    assert kills >= 100, f"only {kills} kills in 30 s"
    assert sum(reported) > 1000, "the workers got work done between kills"
    # Nothing hangs, and every count is what was reported, give or take an admission whose
    # report a kill cut off (one per kill at most).
    checker = RateLimiter.from_rate("1000000/hour", storage=counted)
    checker._check_shared_table()
    for key in range(4):
        used = 1_000_000 - checker.remaining(f"k{key}")
        assert reported[key] <= used <= reported[key] + kills, (key, reported[key], used, kills)
    two = RateLimiter.from_rate(shm_worker.TWO_RATES, storage=counted)
    two._check_shared_table()
    for key in range(4):
        used = 1_000_000 - two.remaining(f"m{key}")
        count = reported[4 + key]
        assert count <= used <= count + kills, (key, count, used, kills)
    churner = RateLimiter.from_rate("5/second", "gcra", storage=churn, on_full="evict")
    churner._check_shared_table()
    assert churner.allow("after-the-kills")
