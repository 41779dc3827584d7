"""Importing the package, or its framework-neutral web pieces, imports no web framework."""

from __future__ import annotations

import subprocess
import sys

FRAMEWORKS = ["starlette", "fastapi", "django", "flask", "werkzeug", "uvicorn", "gunicorn"]


def test_the_core_and_the_shared_web_pieces_import_no_framework(tmp_path: object) -> None:
    code = (
        "import sys\n"
        "import rust_py_rate_limit, rust_py_rate_limit.keys, rust_py_rate_limit.headers\n"
        "import rust_py_rate_limit.policy\n"
        f"print([m for m in {FRAMEWORKS!r} if m in sys.modules])\n"
    )
    # From a temporary directory, so the installed package is the one imported.
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=str(tmp_path), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
