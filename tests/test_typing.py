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
