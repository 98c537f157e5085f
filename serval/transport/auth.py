"""Every connection proves it belongs to the instance before a single frame is decoded.

Each serval instance has a secret of 32 random bytes (``serval/_secret.py`` says where it
lives). Both ends of a connection prove they know it, once per connection, by a mutual
HMAC-SHA256 challenge-response; nothing is unpickled, decoded or acted on before that::

    acceptor  -> dialer    MAGIC + server nonce                        (40 bytes)
    dialer    -> acceptor  client nonce + HMAC(secret, "client" | sn | cn)   (64 bytes)
    acceptor  -> dialer    HMAC(secret, "server" | sn | cn)                  (32 bytes)

The dialer sends no frame until the acceptor has proved itself too (replies carry
pickled values, so a dialer must not trust an impostor either). Fresh nonces on both
sides make a recorded exchange useless; the role labels stop a proof from being
reflected back. The exchange has a fixed size and a short deadline, so a peer that
sends garbage, too much, or nothing at all is dropped at once or after
``HANDSHAKE_TIMEOUT_S``: it never reaches the frame decoder. At most
``MAX_PENDING_HANDSHAKES`` connections may be mid-handshake in a process at once;
past that, new ones are dropped at once (a flood of silent connections cannot hold the
process's file descriptors for the deadline). Each rejected peer is
counted (:func:`rejected_peers_total`) and logged, the first at once and later ones
summed up at most once a minute; the secret is never logged.

This protects against anyone who can reach a socket (a TCP port on the cluster's
network, a unix socket) without the secret. It does not encrypt: whoever can read the
traffic sees the requests (see the README's "Security model").
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

from serval.exceptions import ServalError
from serval.transport.connection import Connection

logger = logging.getLogger("serval.transport.auth")

SECRET_BYTES = 32
MAGIC = b"SERVAL\x00\x01"  # the protocol and the handshake's version
NONCE_BYTES = 32
MAC_BYTES = 32  # sha256
SERVER_HELLO_BYTES = len(MAGIC) + NONCE_BYTES
CLIENT_PROOF_BYTES = NONCE_BYTES + MAC_BYTES
HANDSHAKE_TIMEOUT_S = 10.0
# Peers are processes of the instance (a handful per host); a handshake takes ~1 ms.
MAX_PENDING_HANDSHAKES = 256
LOG_EVERY_S = 60.0  # after the first rejection, at most one summary line per minute
_CLIENT_LABEL = b"serval-client-proof"
_SERVER_LABEL = b"serval-server-proof"


class HandshakeError(ConnectionError):
    """The peer did not prove it belongs to this instance (``reason`` says how)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# -- the process's secret --------------------------------------------------------------

_secret: bytes | None = None


def set_instance_secret(secret: bytes) -> None:
    """Use ``secret`` for every connection this process listens on or dials."""
    global _secret
    if len(secret) != SECRET_BYTES:
        raise ServalError(f"an instance secret has {SECRET_BYTES} bytes, not {len(secret)}")
    _secret = bytes(secret)


def instance_secret() -> bytes:
    """This process's instance secret; an error when it has none (nothing may connect)."""
    if _secret is None:
        raise ServalError(
            "this process has no serval instance secret, so it can neither accept nor open "
            "serval connections (serval.start() or serval.connect() loads it)"
        )
    return _secret


def new_secret() -> bytes:
    return os.urandom(SECRET_BYTES)


# -- the exchange, without I/O ------------------------------------------------------------


def _mac(secret: bytes, label: bytes, server_nonce: bytes, client_nonce: bytes) -> bytes:
    return hmac.new(secret, label + server_nonce + client_nonce, hashlib.sha256).digest()


class ServerHandshake:
    """The acceptor's side: send :meth:`hello`, :meth:`feed` what arrives; a returned
    proof means the dialer proved itself (send the proof, then frames may flow)."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self._nonce = os.urandom(NONCE_BYTES)
        self._buf = bytearray()

    def hello(self) -> bytes:
        return MAGIC + self._nonce

    def feed(self, data: bytes) -> bytes | None:
        self._buf += data
        if len(self._buf) > CLIENT_PROOF_BYTES:
            # A real dialer waits for our proof before it sends anything more.
            raise HandshakeError(
                f"sent {len(self._buf)} bytes before proving itself (a handshake is "
                f"{CLIENT_PROOF_BYTES}): not a serval peer, or an old version"
            )
        if len(self._buf) < CLIENT_PROOF_BYTES:
            return None
        client_nonce = bytes(self._buf[:NONCE_BYTES])
        proof = bytes(self._buf[NONCE_BYTES:])
        expected = _mac(self._secret, _CLIENT_LABEL, self._nonce, client_nonce)
        if not hmac.compare_digest(proof, expected):
            raise HandshakeError("wrong proof: it does not know this instance's secret")
        return _mac(self._secret, _SERVER_LABEL, self._nonce, client_nonce)


class ClientHandshake:
    """The dialer's side: :meth:`feed` what arrives; it returns ``(reply, done,
    leftover)``: bytes to send, whether the acceptor proved itself, and bytes past the
    handshake (frames)."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self._nonce = os.urandom(NONCE_BYTES)
        self._server_nonce: bytes | None = None
        self._buf = bytearray()

    def feed(self, data: bytes) -> tuple[bytes, bool, bytes]:
        self._buf += data
        reply = b""
        if self._server_nonce is None:
            if len(self._buf) < len(MAGIC) and MAGIC.startswith(bytes(self._buf)):
                return b"", False, b""
            if not self._buf.startswith(MAGIC):
                raise HandshakeError(
                    "it did not greet as a serval peer (another program on this address, "
                    "or another version of serval)"
                )
            if len(self._buf) < SERVER_HELLO_BYTES:
                return b"", False, b""
            self._server_nonce = bytes(self._buf[len(MAGIC) : SERVER_HELLO_BYTES])
            del self._buf[:SERVER_HELLO_BYTES]
            mac = _mac(self._secret, _CLIENT_LABEL, self._server_nonce, self._nonce)
            reply = self._nonce + mac
        if len(self._buf) < MAC_BYTES:
            return reply, False, b""
        proof = bytes(self._buf[:MAC_BYTES])
        expected = _mac(self._secret, _SERVER_LABEL, self._server_nonce, self._nonce)
        if not hmac.compare_digest(proof, expected):
            raise HandshakeError("wrong proof: it does not know this instance's secret")
        return reply, True, bytes(self._buf[MAC_BYTES:])


# -- rejected peers: counted, logged once ---------------------------------------------


class _Rejections:
    """Counts the peers this process rejected; logs the first at once, then at most one
    line per ``LOG_EVERY_S`` summing up the others (a scan or a flood costs a few lines)."""

    def __init__(self) -> None:
        self.total = 0
        self._unlogged = 0
        self._latest = ("", "")
        self._last_log = -float("inf")
        self._timer: asyncio.TimerHandle | None = None

    def record(self, peer: str, reason: str) -> None:
        self.total += 1
        self._unlogged += 1
        self._latest = (peer, reason)
        now = time.monotonic()
        if now - self._last_log >= LOG_EVERY_S:
            self.flush()
        elif self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop: the next rejection after the window logs
                return
            self._timer = loop.call_later(self._last_log + LOG_EVERY_S - now, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._unlogged:
            return
        peer, reason = self._latest
        if self._unlogged == 1:
            logger.warning(
                "rejected a connection from %s: %s; dropped before decoding anything "
                "(%d rejected by this process so far)",
                *(peer, reason, self.total),
            )
        else:
            logger.warning(
                "rejected %d connections in the last %gs, the latest from %s: %s; nothing "
                "they sent was decoded (%d rejected by this process so far)",
                *(self._unlogged, LOG_EVERY_S, peer, reason, self.total),
            )
        self._unlogged = 0
        self._last_log = time.monotonic()


_rejections = _Rejections()


def rejected_peers_total() -> int:
    """How many peers this process dropped because they failed the handshake."""
    return _rejections.total


def _record_rejection(peer: str, reason: str) -> None:
    _rejections.record(peer, reason)


def _describe_peer(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    if peer:  # tcp: (host, port, ...)
        return f"tcp:{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
    where = f"unix:{transport.get_extra_info('sockname') or '?'}"
    sock: Any = transport.get_extra_info("socket")
    try:  # who is on the other end of a unix socket: the kernel knows
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid, uid, _gid = struct.unpack("3i", creds)
        return f"{where} (pid {pid}, uid {uid})"
    except (AttributeError, OSError):
        return where


# -- the exchange on asyncio transports ----------------------------------------------------


class ServerAuth(asyncio.Protocol):
    """Runs the acceptor's handshake on a new connection; on success the transport is
    handed to the :class:`Connection` ``make_conn`` returns, else dropped."""

    pending = 0  # handshakes under way in this process (MAX_PENDING_HANDSHAKES)

    def __init__(
        self,
        secret: bytes,
        make_conn: Callable[[], Connection],
        timeout_s: float = HANDSHAKE_TIMEOUT_S,
    ) -> None:
        self._handshake = ServerHandshake(secret)
        self._make_conn = make_conn
        self._timeout_s = timeout_s
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._received = 0
        self._over = False
        self._counted = False  # in ServerAuth.pending

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        stream: Any = transport  # uvloop's transports are no asyncio.Transport subclass
        self._transport = stream
        if ServerAuth.pending >= MAX_PENDING_HANDSHAKES:
            self._over = True
            _record_rejection(
                _describe_peer(stream), f"over {MAX_PENDING_HANDSHAKES} handshakes under way"
            )
            stream.abort()
            return
        ServerAuth.pending += 1
        self._counted = True
        stream.write(self._handshake.hello())
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._timeout_s, self._expired)

    def data_received(self, data: bytes) -> None:
        if self._over:
            return
        self._received += len(data)
        try:
            proof = self._handshake.feed(data)
        except HandshakeError as exc:
            self._reject(exc.reason)
            return
        if proof is None:
            return
        self._finish()
        assert self._transport is not None
        self._transport.write(proof)
        conn = self._make_conn()
        self._transport.set_protocol(conn)
        conn.connection_made(self._transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._over:
            return
        self._finish()
        if self._received:  # a bare connect-and-close (a liveness probe) is no attempt
            assert self._transport is not None
            _record_rejection(_describe_peer(self._transport), "closed mid-handshake")

    def _expired(self) -> None:
        self._timer = None
        if not self._over:
            self._reject(f"no handshake within {self._timeout_s:g}s")

    def _reject(self, reason: str) -> None:
        self._finish()
        assert self._transport is not None
        _record_rejection(_describe_peer(self._transport), reason)
        self._transport.abort()

    def _finish(self) -> None:
        self._over = True
        if self._counted:
            self._counted = False
            ServerAuth.pending -= 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class ClientAuth(asyncio.Protocol):
    """Runs the dialer's handshake; ``done`` gets the ready :class:`Connection`, or a
    :class:`HandshakeError`."""

    def __init__(self, secret: bytes, make_conn: Callable[[], Connection]) -> None:
        self._handshake = ClientHandshake(secret)
        self._make_conn = make_conn
        self._transport: asyncio.Transport | None = None
        self.done: asyncio.Future[Connection] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.done.done():
            return
        assert self._transport is not None
        try:
            reply, ok, leftover = self._handshake.feed(data)
        except HandshakeError as exc:
            _record_rejection(_describe_peer(self._transport), exc.reason)
            self._transport.abort()
            self.done.set_exception(HandshakeError(f"the peer failed the handshake: {exc}"))
            return
        if reply:
            self._transport.write(reply)
        if not ok:
            return
        conn = self._make_conn()
        self._transport.set_protocol(conn)
        conn.connection_made(self._transport)
        self.done.set_result(conn)
        if leftover:
            conn.data_received(leftover)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(
                HandshakeError(
                    "the peer closed the connection during the handshake: it belongs to "
                    "another serval instance, or this process's secret is stale"
                )
            )

    def abort(self) -> None:
        """Give up (the dialer's deadline passed)."""
        if self._transport is not None:
            self._transport.abort()
        if not self.done.done():
            self.done.cancel()
