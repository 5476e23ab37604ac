"""Reading a request body from outside, bounded: one place for every endpoint that is not
the API's JSON (the VK Callback API, Telegram's webhook, the web form)."""

from __future__ import annotations

from aiohttp import web


async def read_at_most(request: web.Request, limit: int) -> bytes | None:
    """The whole body, or None once it passes `limit`. A chunked body says no length, and
    one read returns only what has arrived so far: read until the end."""
    parts: list[bytes] = []
    size = 0
    while chunk := await request.content.read(limit + 1 - size):
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            return None
    return b"".join(parts)
