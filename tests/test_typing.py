"""The package is typed: the stub matches the built module, and the examples pass mypy --strict."""

from __future__ import annotations

import pathlib
import subprocess
import sys

from conftest import CHECKOUT

import rust_py_rate_limit

PACKAGE = pathlib.Path(rust_py_rate_limit.__file__).parent


def run(args: list[str], cwd: pathlib.Path) -> subprocess.CompletedProcess[str]:
    # Run from `cwd` (a temporary directory), so the checkout's package, which has no compiled
    # module, is not on sys.path and the installed package is the one checked.
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_the_installed_package_ships_its_stub_and_py_typed() -> None:
    assert (PACKAGE / "py.typed").is_file()
    assert (PACKAGE / "_core.pyi").is_file()


def test_stub_matches_the_compiled_module(tmp_path: pathlib.Path) -> None:
    result = run(["-m", "mypy.stubtest", "rust_py_rate_limit._core"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_examples_pass_mypy_strict(tmp_path: pathlib.Path) -> None:
    examples = sorted(str(p) for p in (CHECKOUT / "examples").glob("*.py"))
    assert examples
    result = run(["-m", "mypy", "--strict", "--no-incremental", *examples], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_package_passes_mypy_strict(tmp_path: pathlib.Path) -> None:
    # The installed copy, checked as the package it is (-p), integrations included.
    result = run(
        ["-m", "mypy", "--strict", "--no-incremental", "-p", "rust_py_rate_limit"], tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr


# Every integration takes its settings as **settings: Unpack[<TypedDict>]: mypy checks each
# keyword's name and type. One call a line; each line marked `# bad` must be an error.
SETTINGS_USE = """
from django.http import HttpRequest, HttpResponse
from fastapi import FastAPI, Request
from flask import Flask

from rust_py_rate_limit import ManualClock
from rust_py_rate_limit.django import ratelimit
from rust_py_rate_limit.fastapi import Limiter, RateLimit, RateLimitMiddleware
from rust_py_rate_limit.flask import FlaskRateLimiter
from rust_py_rate_limit.policy import RequestPolicy


def key(request: Request) -> str:
    return "k"


def view(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


RateLimitMiddleware(FastAPI(), rate="1/minute", key_func=key, exempt_paths=["/health"])
RateLimit("1/minute", cost=lambda request: 2, headers="ietf", clock=ManualClock())
Limiter(storage=None, trusted_proxies=["10.0.0.0/8"]).limit("1/minute", name="api")
ratelimit("1/minute", methods=["POST"], status_code=503)(view)
FlaskRateLimiter(Flask(__name__)).limit("1/minute", reset_format="epoch")
RequestPolicy(limit=1, window_seconds=60, body="slow down")
RateLimitMiddleware(FastAPI(), rate="1/minute", key_fnc="ip")  # bad
RateLimit("1/minute", exempt_method=["GET"])  # bad
Limiter(cots=2)  # bad
Limiter().limit("1/minute", storage="redis://127.0.0.1")  # bad: the app's storage only
ratelimit("1/minute", headrs="ietf")  # bad
FlaskRateLimiter().limit("1/minute", stauts_code=503)  # bad
RequestPolicy(rate="1/minute", cost="2")  # bad: a str cost
RateLimit("1/minute", headers="draft")  # bad: not a header style
"""


def test_mypy_checks_the_settings_of_every_integration(tmp_path: pathlib.Path) -> None:
    source = tmp_path / "settings_use.py"
    source.write_text(SETTINGS_USE)
    result = run(["-m", "mypy", "--strict", "--no-incremental", source.name], tmp_path)
    lines = SETTINGS_USE.splitlines()
    flagged = {
        int(line.split(":")[1])
        for line in result.stdout.splitlines()
        if line.startswith(f"{source.name}:") and ": error:" in line
    }
    bad = {number for number, line in enumerate(lines, 1) if "# bad" in line}
    assert bad and flagged == bad, result.stdout + result.stderr
