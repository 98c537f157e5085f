"""Addresses (``unix:/path`` or ``tcp:host:port``) and how to listen on or dial them."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

from serval.exceptions import ConfigError, ReplicaUnavailableError
from serval.transport.connection import Connection, RequestHandler

# Linux limits sun_path to 108 bytes including the NUL.
MAX_UNIX_PATH = 107


def unix_address(path: str) -> str:
    if len(path.encode()) > MAX_UNIX_PATH:
        raise ConfigError(
            f"unix socket path {path!r} is {len(path.encode())} bytes; the limit is "
            f"{MAX_UNIX_PATH}. Set SERVAL_HOME to a shorter directory."
        )
    return f"unix:{path}"


def _split(address: str) -> tuple[str, str]:
    scheme, _, rest = address.partition(":")
    if scheme not in ("unix", "tcp") or not rest:
        raise ConfigError(f"bad address {address!r}: expected 'unix:/path' or 'tcp:host:port'")
    return scheme, rest


async def listen(address: str, handler: RequestHandler) -> asyncio.AbstractServer:
    """Accept framed connections on ``address``; ``handler`` answers their requests."""
    loop = asyncio.get_running_loop()
    scheme, rest = _split(address)
    if scheme == "unix":
        try:
            os.unlink(rest)
        except FileNotFoundError:
            pass
        return await loop.create_unix_server(lambda: Connection(handler), rest)
    host, _, port = rest.rpartition(":")
    return await loop.create_server(lambda: Connection(handler), host, int(port))


async def dial(
    address: str,
    on_lost: Callable[[Connection], None] | None = None,
    timeout_s: float = 5.0,
) -> Connection:
    """Connect to ``address``; raises ReplicaUnavailableError when nobody answers."""
    loop = asyncio.get_running_loop()
    scheme, rest = _split(address)
    try:
        if scheme == "unix":
            coro = loop.create_unix_connection(lambda: Connection(None, on_lost), rest)
        else:
            host, _, port = rest.rpartition(":")
            coro = loop.create_connection(lambda: Connection(None, on_lost), host, int(port))
        _, conn = await asyncio.wait_for(coro, timeout_s)
    except (OSError, asyncio.TimeoutError) as exc:
        raise ReplicaUnavailableError(f"cannot connect to {address}: {exc}") from exc
    return conn
