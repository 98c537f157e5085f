"""Entry point of the controller process: ``python -m serval.controller ...``.

On the local runtime its supervisor (``supervisor.py``) bound the HTTP port and
passes it as ``--http-fd`` (so "port in use" is reported before anything starts, and
the proxy inherits a ready socket); on Ray the proxies bind it on their nodes. Either
way the controller first restores its checkpoint and adopts the replicas (and proxy)
a previous controller left. It listens for RPCs on ``--address``, writes one
JSON line to ``--ready-fd`` (``{"ok": true, ...}`` or ``{"ok": false, "error": ...}``)
and runs until told to shut down, until its lifeline (stdin) closes, or until
SIGTERM/SIGINT. On Ray only ``serval.shutdown()`` stops the replicas and proxies; when
the controller merely exits (its actor was killed), they keep serving, and it exits
with a non-zero code so that its host asks Ray for a new controller.
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
import time
from typing import Any

from serval import _secret
from serval._lifeline import run_loop, watch_lifeline
from serval.config import HTTPOptions
from serval.controller.checkpoint import Checkpointer
from serval.controller.controller import Controller
from serval.controller.proxy_state import ProxyState
from serval.exceptions import ServalError
from serval.observability.logs import setup_logging
from serval.runtime import load_runtime
from serval.runtime._sockets import bind_http
from serval.transport.address import dial, listen

logger = logging.getLogger("serval.controller")

LISTEN_RETRY_S = 10.0


async def _already_running(address: str) -> bool:
    try:
        conn = await dial(address, timeout_s=1.0)
    except Exception:
        return False
    conn.close()
    return True


async def amain(args: argparse.Namespace, report: Any) -> None:
    options = HTTPOptions.model_validate(json.loads(args.http_options))
    on_ray = args.runtime == "ray"
    _secret.load(args.state_dir)  # from our Ray host, else the state directory's file
    if not on_ray and await _already_running(args.address):
        raise ServalError(f"a serval controller is already running at {args.address}")
    runtime_options: dict[str, Any] = {"address": args.ray_address or None}
    if on_ray:
        runtime_options["namespace"] = args.ray_namespace
    # On Ray the proxies bind the port on their nodes; here the controller binds it, so a
    # port in use is reported before anything starts, and the proxy inherits the socket.
    serve_http = options.location != "NoServer"
    sock = None
    if args.http_fd >= 0:  # bound by the supervisor, once for every controller it starts
        sock = socket.socket(fileno=args.http_fd)
    elif serve_http and not on_ray:
        sock = bind_http(options.host, options.port)
    runtime = load_runtime(args.runtime, args.state_dir, **runtime_options)
    proxy_opts = options.model_dump()
    proxy = ProxyState(runtime, args.address, proxy_opts, sock) if serve_http else None
    store = runtime.checkpoint_store()
    checkpointer = Checkpointer(store) if store is not None else None
    info = {
        "http_host": options.host,
        "http_port": sock.getsockname()[1] if sock is not None else options.port,
        "pid": os.getpid(),
        "runtime": args.runtime,
        "address": args.address,
        "state_dir": args.state_dir,
        "http_options": {k: v for k, v in proxy_opts.items() if k != "admin_token"},
    }
    controller = Controller(args.address, runtime, proxy, info, checkpointer)
    if checkpointer is not None:
        # Adopt before answering anyone: a router that resubscribes must get the replica
        # set it had, not an empty one.
        await checkpointer.restore(controller)
        if checkpointer.error:
            info["checkpoint_error"] = checkpointer.error
        controller.reconcile()
    server = await _listen(args.address, controller.handle)
    if proxy is not None:
        await proxy.start()
        info["proxies"] = proxy.urls()
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
    if on_ray and not controller.shut_down:
        # Ray stopped our host (or it crashed): the next controller adopts the replicas
        # and proxies, so leave them running.
        logger.info("controller exiting; replicas and proxies keep running")
        raise SystemExit(3)
    if proxy is not None:
        await proxy.stop()
    await runtime.shutdown()
    if args.address.startswith("unix:"):
        try:
            os.unlink(args.address[5:])
        except FileNotFoundError:
            pass
    logger.info("controller stopped")


async def _listen(address: str, handler: Any) -> asyncio.AbstractServer:
    """Listen on ``address``; a TCP port may still be held for a moment by the controller
    this one replaces."""
    deadline = time.monotonic() + LISTEN_RETRY_S
    while True:
        try:
            return await listen(address, handler)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                raise ServalError(f"the controller cannot listen on {address}: {exc}") from None
            await asyncio.sleep(0.1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m serval.controller")
    parser.add_argument("--address", required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--http-options", default="{}")
    parser.add_argument("--runtime", default="local")
    parser.add_argument("--ray-address", default="")
    parser.add_argument("--ray-namespace", default="serval")
    parser.add_argument("--ready-fd", type=int, default=-1)
    parser.add_argument("--http-fd", type=int, default=-1)
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
