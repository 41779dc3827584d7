"""Every response of a test app says which worker process served it (``X-Worker-Pid``), the
rate limit's refusals included: a WSGI and an ASGI wrapper around the whole app.

The pid is read per request: under ``gunicorn --preload`` the app is imported before the
workers are forked.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

HEADER = "X-Worker-Pid"

Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]


class WsgiPid:
    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, [*headers, (HEADER, str(os.getpid()))], exc_info)

        return self.app(environ, start)


class AsgiPid:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(
        self,
        scope: Message,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        async def send_pid(message: Message) -> None:
            if message["type"] == "http.response.start":
                pid = (HEADER.lower().encode(), str(os.getpid()).encode())
                message = {**message, "headers": [*message.get("headers", ()), pid]}
            await send(message)

        await self.app(scope, receive, send_pid if scope["type"] == "http" else send)
