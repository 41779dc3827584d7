"""A live dashboard of the limiters: :class:`Dashboard`, an ASGI app whose ``.wsgi`` is the
same dashboard as a WSGI app. Nothing here is imported by ``import rust_py_rate_limit``."""

from __future__ import annotations

from .app import Dashboard

__all__ = ["Dashboard"]
