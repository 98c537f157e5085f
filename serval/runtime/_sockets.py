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


def free_tcp_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
