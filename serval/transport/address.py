"""Addresses (``unix:/path`` or ``tcp:host:port``) and how to listen on or dial them.

Every connection runs the instance handshake (:mod:`serval.transport.auth`) before its
first frame; unix sockets are created ``0600`` (in a ``0700`` state directory).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

from serval.exceptions import ConfigError, ReplicaUnavailableError
from serval.transport.auth import ClientAuth, ServerAuth, instance_secret
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


async def listen(
    address: str, handler: RequestHandler, *, secret: bytes | None = None
) -> asyncio.AbstractServer:
    """Accept framed connections on ``address``; ``handler`` answers their requests.

    Only peers that prove they know ``secret`` (default: this process's instance secret)
    get a :class:`Connection`; the others are dropped before anything is decoded.
    """
    loop = asyncio.get_running_loop()
    scheme, rest = _split(address)
    key = instance_secret() if secret is None else secret

    def accept() -> ServerAuth:
        return ServerAuth(key, lambda: Connection(handler))

    if scheme == "unix":
        try:
            os.unlink(rest)
        except FileNotFoundError:
            pass
        server = await loop.create_unix_server(accept, rest)
        os.chmod(rest, 0o600)
        return server
    host, _, port = rest.rpartition(":")
    return await loop.create_server(accept, host, int(port))


async def dial(
    address: str,
    on_lost: Callable[[Connection], None] | None = None,
    timeout_s: float = 5.0,
    *,
    secret: bytes | None = None,
) -> Connection:
    """Connect to ``address`` and prove both ends belong to the instance (``secret``,
    default: this process's); raises ReplicaUnavailableError when nobody answers or the
    peer fails the handshake."""
    loop = asyncio.get_running_loop()
    scheme, rest = _split(address)
    key = instance_secret() if secret is None else secret
    auth: ClientAuth | None = None

    def protocol() -> ClientAuth:
        nonlocal auth
        auth = ClientAuth(key, lambda: Connection(None, on_lost))
        return auth

    async def connect() -> Connection:
        if scheme == "unix":
            await loop.create_unix_connection(protocol, rest)
        else:
            host, _, port = rest.rpartition(":")
            await loop.create_connection(protocol, host, int(port))
        assert auth is not None
        return await auth.done

    try:
        return await asyncio.wait_for(connect(), timeout_s)
    except (OSError, asyncio.TimeoutError) as exc:
        if auth is not None:
            auth.abort()
        why = str(exc) or f"no answer within {timeout_s:g}s"
        raise ReplicaUnavailableError(f"cannot connect to {address}: {why}") from exc
