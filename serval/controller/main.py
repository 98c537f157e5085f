"""Entry point of the controller process: ``python -m serval.controller ...``.

It binds the HTTP port itself (so "port in use" is reported before anything
starts, and the proxy inherits a ready socket), listens for RPCs on ``--address``,
writes one JSON line to ``--ready-fd`` (``{"ok": true, ...}`` or ``{"ok": false,
"error": ...}``) and runs until told to shut down, until its lifeline (stdin) closes,
or until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import logging
import os
import signal
import socket
from typing import Any

from serval._lifeline import run_loop, watch_lifeline
from serval.config import HTTPOptions
from serval.controller.controller import Controller
from serval.controller.proxy_state import ProxyState
from serval.exceptions import ServalError
from serval.observability.logs import setup_logging
from serval.runtime import load_runtime
from serval.transport.address import dial, listen

logger = logging.getLogger("serval.controller")


def bind_http(host: str, port: int) -> socket.socket:
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


async def _already_running(address: str) -> bool:
    try:
        conn = await dial(address, timeout_s=1.0)
    except Exception:
        return False
    conn.close()
    return True


async def amain(args: argparse.Namespace, report: Any) -> None:
    options = HTTPOptions.model_validate(json.loads(args.http_options))
    if await _already_running(args.address):
        raise ServalError(f"a serval controller is already running at {args.address}")
    sock = None if options.location == "NoServer" else bind_http(options.host, options.port)
    port = sock.getsockname()[1] if sock is not None else None
    runtime = load_runtime(args.runtime, args.state_dir, address=args.ray_address or None)
    proxy_opts = options.model_dump()
    proxy = None
    if sock is not None:
        proxy = ProxyState(runtime, sock, args.address, proxy_opts)
    info = {
        "http_host": options.host,
        "http_port": port,
        "pid": os.getpid(),
        "runtime": args.runtime,
        "address": args.address,
        "state_dir": args.state_dir,
        "http_options": {k: v for k, v in proxy_opts.items() if k != "admin_token"},
    }
    controller = Controller(args.address, runtime, proxy, info)
    server = await listen(args.address, controller.handle)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, controller.stopped.set)
    lifeline = loop.create_task(watch_lifeline(controller.stopped.set))
    runner = loop.create_task(controller.run())
    report({"ok": True, **info})
    await controller.stopped.wait()
    runner.cancel()
    lifeline.cancel()
    server.close()
    if proxy is not None:
        await proxy.stop()
    await runtime.shutdown()
    if args.address.startswith("unix:"):
        try:
            os.unlink(args.address[5:])
        except FileNotFoundError:
            pass
    logger.info("controller stopped")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m serval.controller")
    parser.add_argument("--address", required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--http-options", default="{}")
    parser.add_argument("--runtime", default="local")
    parser.add_argument("--ray-address", default="")
    parser.add_argument("--ready-fd", type=int, default=-1)
    args = parser.parse_args(argv)
    setup_logging("controller")
    reported = False

    def report(payload: dict[str, Any]) -> None:
        nonlocal reported
        if args.ready_fd >= 0 and not reported:
            reported = True
            with os.fdopen(args.ready_fd, "w") as out:
                out.write(json.dumps(payload) + "\n")

    try:
        run_loop(amain(args, report))
    except Exception as exc:
        logger.debug("controller failed to start", exc_info=True)
        report({"ok": False, "error": str(exc)})
        if not reported or args.ready_fd < 0:
            logger.error("%s", exc)
        raise SystemExit(1) from None
