"""Shared fixtures. The tests import the *installed* package (see pyproject's pytest options)."""

from __future__ import annotations

import pathlib

import pytest

import rust_py_rate_limit
from rust_py_rate_limit import ManualClock

CHECKOUT = pathlib.Path(__file__).resolve().parent.parent


def pytest_report_header() -> str:
    return f"rust_py_rate_limit {rust_py_rate_limit.__version__} from {rust_py_rate_limit.__file__}"


@pytest.fixture
def clock() -> ManualClock:
    """A clock that only moves when the test advances it."""
    return ManualClock()
