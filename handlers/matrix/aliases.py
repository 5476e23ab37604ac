"""Room aliases in the config ("#press-housing:example.org"), resolved to room ids once at
start. Everything after that (the directory, the outbox, the sync loop) is keyed by room id,
so an alias is never compared with an id. An alias that cannot be resolved stops the start
with the alias and the homeserver's reason: a room silently left out would lose its cards."""

from __future__ import annotations

import aiohttp
from nio import AsyncClient, AsyncClientConfig, RoomResolveAliasError
from nio.exceptions import LocalTransportError, RemoteTransportError

from bot.settings.config import Config

__all__ = ["RoomAliasError", "resolve_room_aliases", "with_room_ids"]

# Asked once at start: a few tries, then the start fails with the reason.
RESOLVE_CONFIG = AsyncClientConfig(max_limit_exceeded=3, max_timeouts=2, request_timeout=20)


class RoomAliasError(RuntimeError):
    """A configured room alias the homeserver could not resolve: which, and why."""


def with_room_ids(config: Config, ids: dict[str, str]) -> Config:
    """The config with each alias in `ids` replaced by its room id."""
    departments = [
        d.model_copy(
            update={
                "matrix": d.matrix.model_copy(
                    update={"room_id": ids.get(d.matrix.room_id, d.matrix.room_id)}
                )
            }
        )
        if d.matrix is not None
        else d
        for d in config.departments
    ]
    recipients = config.digest.recipients
    recipients = recipients.model_copy(
        update={"matrix_room_ids": [ids.get(r, r) for r in recipients.matrix_room_ids]}
    )
    digest = config.digest.model_copy(update={"recipients": recipients})
    return config.model_copy(update={"departments": departments, "digest": digest})


async def resolve_room_aliases(config: Config) -> Config:
    """The config with every room alias replaced by the room id the homeserver names for it.
    Raises RoomAliasError for the first alias that cannot be resolved."""
    aliases = config.matrix_room_aliases
    matrix = config.matrix
    if not aliases or matrix is None or not matrix.enabled:
        return config
    client = AsyncClient(matrix.homeserver, matrix.user_id, config=RESOLVE_CONFIG)
    client.access_token = matrix.access_token
    ids: dict[str, str] = {}
    try:
        for alias in aliases:
            try:
                response = await client.room_resolve_alias(alias)
            except (
                aiohttp.ClientError,
                TimeoutError,
                OSError,
                LocalTransportError,
                RemoteTransportError,
            ) as error:
                raise RoomAliasError(
                    f"Matrix room alias {alias} cannot be resolved: {matrix.homeserver} did "
                    f"not answer ({type(error).__name__}: {error})"
                ) from error
            if isinstance(response, RoomResolveAliasError):
                code = f" ({response.status_code})" if response.status_code else ""
                raise RoomAliasError(
                    f"Matrix room alias {alias} cannot be resolved: {response.message}{code}"
                )
            ids[alias] = response.room_id
    finally:
        await client.close()
    return with_room_ids(config, ids)
