"""The instance handshake: both ends prove they know the secret before any frame."""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from serval.exceptions import ReplicaUnavailableError, ServalError
from serval.transport import auth
from serval.transport.address import dial, listen
from serval.transport.auth import (
    CLIENT_PROOF_BYTES,
    MAGIC,
    SERVER_HELLO_BYTES,
    ClientHandshake,
    HandshakeError,
    ServerHandshake,
)
from serval.transport.connection import Connection, encode_frame
from serval.transport.messages import Call, CallResult, Message
from tests.utils import short_tmpdir


class Marker:
    """Unpickling this creates a file: proof that a payload was decoded."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.path, "w"))


# -- the exchange without I/O -----------------------------------------------------------


def test_same_secret_both_sides_prove_themselves() -> None:
    secret = auth.new_secret()
    server, client = ServerHandshake(secret), ClientHandshake(secret)
    reply, done, _ = client.feed(server.hello())
    assert len(reply) == CLIENT_PROOF_BYTES and not done
    proof = server.feed(reply)
    assert proof is not None
    assert client.feed(proof + b"frames") == (b"", True, b"frames")


def test_a_dialer_with_another_secret_is_refused() -> None:
    server, client = ServerHandshake(auth.new_secret()), ClientHandshake(auth.new_secret())
    reply, _, _ = client.feed(server.hello())
    with pytest.raises(HandshakeError, match="does not know this instance's secret"):
        server.feed(reply)


def test_an_acceptor_with_another_secret_is_refused_by_the_dialer() -> None:
    secret = auth.new_secret()
    impostor, honest = ServerHandshake(auth.new_secret()), ServerHandshake(secret)
    # The impostor cannot produce the acceptor's proof for our nonce: it relays the
    # honest server's proof for a different challenge, which must not pass.
    client = ClientHandshake(secret)
    client.feed(impostor.hello())
    stolen = honest.feed(ClientHandshake(secret).feed(honest.hello())[0])
    assert stolen is not None
    with pytest.raises(HandshakeError, match="wrong proof"):
        client.feed(stolen)


def test_proofs_are_fresh_and_role_bound() -> None:
    secret = auth.new_secret()
    server = ServerHandshake(secret)
    client = ClientHandshake(secret)
    reply, _, _ = client.feed(server.hello())
    # Replaying a valid client proof to another acceptor (new nonce) fails.
    with pytest.raises(HandshakeError):
        ServerHandshake(secret).feed(reply)


def test_garbage_and_oversized_handshakes_are_refused() -> None:
    with pytest.raises(HandshakeError, match="before proving itself"):
        ServerHandshake(auth.new_secret()).feed(encode_frame(1, Call("x", b"p" * 100)))
    with pytest.raises(HandshakeError, match="did not greet"):
        ClientHandshake(auth.new_secret()).feed(b"HTTP/1.1 200 OK\r\n")
    # A greeting that arrives a byte at a time is fine.
    client = ClientHandshake(auth.new_secret())
    hello = ServerHandshake(auth.new_secret()).hello()
    for i in range(SERVER_HELLO_BYTES - 1):
        assert client.feed(hello[i : i + 1]) == (b"", False, b"")
    assert len(client.feed(hello[-1:])[0]) == CLIENT_PROOF_BYTES


def test_the_process_secret_has_the_right_size() -> None:
    with pytest.raises(ServalError, match="32 bytes"):
        auth.set_instance_secret(b"short")


def test_no_secret_no_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "_secret", None)
    with pytest.raises(ServalError, match="no serval instance secret"):
        auth.instance_secret()


# -- on real sockets ------------------------------------------------------------------------


@pytest.fixture
async def server(tmp_path: object) -> AsyncIterator[tuple[str, list[Message]]]:
    """A framed server on a unix socket that records what it decodes and echoes calls."""
    got: list[Message] = []

    def handler(conn: Connection, sid: int, msg: Message) -> None:
        got.append(msg)
        if isinstance(msg, Call):
            conn.send(sid, CallResult(msg.payload))

    with short_tmpdir() as d:
        address = f"unix:{os.path.join(d, 's.sock')}"
        srv = await listen(address, handler)
        yield address, got
        srv.close()


async def test_real_peers_talk_and_the_socket_is_private(
    server: tuple[str, list[Message]],
) -> None:
    address, got = server
    assert oct(os.stat(address[5:]).st_mode & 0o777) == "0o600"
    before = auth.rejected_peers_total()
    conn = await dial(address)
    assert await conn.open(Call("x", b"hi")).receive() == CallResult(b"hi")
    conn.close()
    assert auth.rejected_peers_total() == before
    assert len(got) == 1


async def test_a_dialer_with_a_wrong_secret_gets_nothing_decoded(
    server: tuple[str, list[Message]], caplog: pytest.LogCaptureFixture
) -> None:
    address, got = server
    before = auth.rejected_peers_total()
    with caplog.at_level(logging.WARNING, logger="serval.transport.auth"):
        with pytest.raises(ReplicaUnavailableError, match="closed the connection during"):
            await dial(address, secret=auth.new_secret())
        await _wait(lambda: auth.rejected_peers_total() == before + 1)
    assert got == []
    assert any("wrong proof" in r.getMessage() for r in caplog.records)


async def test_a_dialer_refuses_an_acceptor_with_another_secret(tmp_path: object) -> None:
    with short_tmpdir() as d:
        address = f"unix:{os.path.join(d, 's.sock')}"
        srv = await listen(address, lambda c, s, m: None, secret=auth.new_secret())
        with pytest.raises(ReplicaUnavailableError):
            await dial(address)
        srv.close()


async def test_a_raw_call_frame_is_never_unpickled(
    server: tuple[str, list[Message]], caplog: pytest.LogCaptureFixture
) -> None:
    address, got = server
    with short_tmpdir() as d:
        marker = os.path.join(d, "pwned")
        frame = encode_frame(1, Call("__call__", pickle.dumps(((Marker(marker),), {}))))
        before = auth.rejected_peers_total()
        with caplog.at_level(logging.WARNING, logger="serval.transport.auth"):
            reader, writer = await asyncio.open_unix_connection(address[5:])
            hello = await reader.readexactly(SERVER_HELLO_BYTES)
            assert hello.startswith(MAGIC)
            writer.write(frame)  # a frame where the proof should be
            assert await asyncio.wait_for(reader.read(), 10) == b""  # dropped
            writer.close()
            await _wait(lambda: auth.rejected_peers_total() == before + 1)
        assert got == [] and not os.path.exists(marker)
        pickle.loads(pickle.dumps(Marker(marker))).close()  # the payload is armed:
        assert os.path.exists(marker)
        lines = [r.getMessage() for r in caplog.records if r.name == "serval.transport.auth"]
        assert len(lines) <= 1  # later rejections within a minute are summed up, not logged
        assert auth.new_secret() not in " ".join(lines).encode()


async def test_a_silent_peer_is_dropped_after_the_deadline() -> None:
    got: list[Message] = []
    with short_tmpdir() as d:
        address = f"unix:{os.path.join(d, 's.sock')}"
        srv = await _listen_with_timeout(address, got, 0.2)
        before = auth.rejected_peers_total()
        reader, writer = await asyncio.open_unix_connection(address[5:])
        await reader.readexactly(SERVER_HELLO_BYTES)
        # Say nothing: the acceptor hangs up by itself.
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()
        await _wait(lambda: auth.rejected_peers_total() == before + 1)
        srv.close()


async def test_a_flood_of_silent_peers_holds_at_most_the_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(auth, "MAX_PENDING_HANDSHAKES", 3)
    got: list[Message] = []
    with short_tmpdir() as d:
        address = f"unix:{os.path.join(d, 's.sock')}"
        srv: Any = await _listen_with_timeout(address, got, 30.0)
        silent = []
        for _ in range(3):  # up to the cap: each one gets the server's hello, then waits
            reader, writer = await asyncio.open_unix_connection(address[5:])
            await reader.readexactly(SERVER_HELLO_BYTES)
            silent.append(writer)
        before = auth.rejected_peers_total()
        reader, writer = await asyncio.open_unix_connection(address[5:])
        assert await asyncio.wait_for(reader.read(), 10) == b""  # dropped at once
        writer.close()
        assert auth.rejected_peers_total() == before + 1
        for w in silent:
            w.close()
        await _wait(lambda: auth.ServerAuth.pending == 0)
        conn = await dial(address)  # room again: a real peer gets in
        conn.close()
        srv.close()


async def test_a_bare_connect_and_close_is_not_counted(
    server: tuple[str, list[Message]],
) -> None:
    address, _ = server
    before = auth.rejected_peers_total()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(address[5:])
    conn = await dial(address)  # the server is still fine
    conn.close()
    await asyncio.sleep(0.05)
    assert auth.rejected_peers_total() == before


async def test_tcp_peers_too() -> None:
    got: list[Message] = []

    def handler(conn: Connection, sid: int, msg: Message) -> None:
        got.append(msg)
        conn.send(sid, CallResult(b"ok"))

    srv = await listen("tcp:127.0.0.1:0", handler)
    port = srv.sockets[0].getsockname()[1]
    conn = await dial(f"tcp:127.0.0.1:{port}")
    assert await conn.open(Call("x", b"")).receive() == CallResult(b"ok")
    conn.close()
    before = auth.rejected_peers_total()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await reader.readexactly(SERVER_HELLO_BYTES)
    writer.write(b"\x00" * CLIENT_PROOF_BYTES)
    assert await asyncio.wait_for(reader.read(), 10) == b""
    writer.close()
    await _wait(lambda: auth.rejected_peers_total() == before + 1)
    assert [m for m in got if isinstance(m, Call)] == [Call("x", b"")]
    srv.close()


def test_later_rejections_are_summed_up_once_a_minute(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    now = [1000.0]
    monkeypatch.setattr(auth.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(auth, "_rejections", auth._Rejections())
    with caplog.at_level(logging.WARNING, logger="serval.transport.auth"):
        for port in range(4000, 4005):
            auth._record_rejection(f"tcp:10.0.0.9:{port}", "wrong proof")
        assert len(caplog.records) == 1
        assert "from tcp:10.0.0.9:4000: wrong proof" in caplog.records[0].getMessage()
        now[0] += auth.LOG_EVERY_S
        auth._record_rejection("tcp:10.0.0.9:4005", "garbage")
    assert len(caplog.records) == 2
    summary = caplog.records[1].getMessage()
    assert "rejected 5 connections in the last 60s, the latest from tcp:10.0.0.9:4005" in summary
    assert "(6 rejected by this process so far)" in summary
    assert auth.rejected_peers_total() == 6


async def test_a_burst_is_summed_up_when_the_minute_ends(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(auth, "LOG_EVERY_S", 0.2)
    monkeypatch.setattr(auth, "_rejections", auth._Rejections())
    with caplog.at_level(logging.WARNING, logger="serval.transport.auth"):
        for _ in range(3):
            auth._record_rejection("tcp:10.0.0.9:4000", "wrong proof")
        assert len(caplog.records) == 1
        await _wait(lambda: len(caplog.records) == 2)  # no further rejection needed
    assert "rejected 2 connections" in caplog.records[1].getMessage()


async def _listen_with_timeout(address: str, got: list[Message], timeout_s: float) -> object:
    loop = asyncio.get_running_loop()
    secret = auth.instance_secret()

    def accept() -> auth.ServerAuth:
        return auth.ServerAuth(secret, lambda: Connection(lambda c, s, m: got.append(m)), timeout_s)

    return await loop.create_unix_server(accept, address[5:])


async def _wait(predicate: object, timeout_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():  # type: ignore[operator]
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.01)
