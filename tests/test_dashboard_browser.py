"""The dashboard in a real browser: headless Chromium (Debian's ``chromium``, installed by
scripts/test like redis-server) loads the page from a real uvicorn server; the test checks the
DOM after the page's script has run and saves a screenshot.

``DASHBOARD_SCREENSHOT=path pytest tests/test_dashboard_browser.py`` also copies the screenshot
there (the observability page's is ``docs/images/dashboard.png``)."""

from __future__ import annotations

import itertools
import os
import pathlib
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from fastapi import FastAPI
from servers import free_port

from rust_py_rate_limit import ConcurrencyLimiter, ManualClock, RateLimiter
from rust_py_rate_limit.dashboard import Dashboard

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(*args: str) -> str:
    assert CHROMIUM, "chromium is not installed (scripts/test installs Debian's package)"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    result = subprocess.run(
        [CHROMIUM, *flags, "--virtual-time-budget=5000", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout


@pytest.fixture
def served() -> Iterator[tuple[str, RateLimiter]]:
    """A dashboard of two limiters with five minutes of traffic in its history (a stepping
    clock: a sample a second), served by uvicorn on loopback."""
    clock = ManualClock()
    api = RateLimiter(40, 1, "sliding", name="api", clock=clock)
    pool = ConcurrencyLimiter(8, name="db")
    dashboard = Dashboard(api, pool)
    ticks = itertools.count()
    dashboard._now = lambda: float(next(ticks))
    leases = []
    for second in range(300):
        load = 40 + 2 * (second % 60)  # one key's half passes its 40 a second in the peaks
        for i in range(load):
            api.allow("ip:198.51.100.9" if i % 2 else f"user:{i % 5}")
        while len(leases) < (second // 20) % 8:
            leases.append(pool.try_acquire())
        if second % 40 == 0:
            for lease in leases:
                lease.release()
            leases.clear()
        clock.advance(1)
        dashboard.state()
    app = FastAPI()
    app.mount("/limits", dashboard)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}/limits/", api
    finally:
        server.should_exit = True
        thread.join(10)
        for lease in leases:
            lease.release()


def test_chromium_draws_the_charts_and_lists_a_key_refused_before_loading(
    served: tuple[str, RateLimiter], tmp_path: pathlib.Path
) -> None:
    url, api = served
    for _ in range(100):
        api.allow("ip:203.0.113.7")  # refused 60 times: listed among the most refused
    dom = chromium("--dump-dom", url)
    assert "data-refreshed=" in dom, "the page's script ran and swapped in api/state"
    assert dom.count("<polyline") >= 4, "allowed and refused, in flight and the limit"
    assert '<code class="key">ip:203.0.113.7</code>' in dom
    shot = tmp_path / "dashboard.png"
    chromium(f"--screenshot={shot}", "--window-size=760,1000", url)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    if target := os.environ.get("DASHBOARD_SCREENSHOT"):
        shutil.copyfile(shot, target)
