"""Listening sockets that serval binds before starting the process that serves them."""

from __future__ import annotations

import errno
import socket

from serval.exceptions import ServalError

WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def bind_http(host: str, port: int) -> socket.socket:
    """Bind and listen on ``host:port`` for a proxy; a clear error when it is taken.

    The socket is inheritable: the proxy process that serves it gets its descriptor.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ServalError(
                f"HTTP port {port} on {host} is already in use by another program: stop it, "
                "or give serval another port (serval.start(http_options={'port': ...}) "
                "or --http-port)"
            ) from None
        raise ServalError(f"cannot listen for HTTP on {host}:{port}: {exc}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def check_grpc_port(host: str, port: int) -> None:
    """A clear error now when the gRPC ingress' port is taken (the proxy binds it later,
    with grpcio, which cannot adopt a socket bound here)."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no owner
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ServalError(
                    f"gRPC port {port} on {host} is already in use by another program: stop "
                    "it, or give serval another port (grpc_options={'port': ...})"
                ) from None
            raise ServalError(f"cannot listen for gRPC on {host}:{port}: {exc}") from None


def free_tcp_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
