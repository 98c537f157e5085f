"""Entry point of a proxy process: ``python -m serval.proxy --fd N --controller ADDR``.

Serves the ASGI :class:`~serval.proxy.app.ProxyApp` with uvicorn (httptools on
uvloop, each response in one write: :mod:`serval.proxy.http_protocol`) on a listening
socket inherited from the controller.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import signal
import socket

import uvicorn

from serval import _process, _secret
from serval._lifeline import run_loop, watch_lifeline
from serval.config import HTTPOptions
from serval.observability import tracing
from serval.observability.logs import setup_logging
from serval.observability.scrape import install_proxy
from serval.proxy.app import ProxyApp
from serval.proxy.grpc_ingress import start_grpc_server
from serval.proxy.http_protocol import CoalescingHttpToolsProtocol

ROUTES_WAIT_S = 30.0


async def serve(fd: int, name: str, controller: str, options: HTTPOptions) -> None:
    ctx = _process.init_on_running_loop(controller)
    app = ProxyApp(ctx, options, name)
    grpc_server = None
    if options.grpc_options is not None:
        # Listening before the first route table is acknowledged: once serval.start()
        # returns, the gRPC port answers too.
        grpc_server = await start_grpc_server(
            ctx, options.host, options.grpc_options, app.grpc_metrics, app.routes, app.direct
        )
    install_proxy(app)
    ctx.controller.subscribe("routes", app.on_routes)
    config = uvicorn.Config(
        app,
        http=CoalescingHttpToolsProtocol,
        lifespan="off",
        access_log=False,
        log_level="warning",
        timeout_keep_alive=int(options.keep_alive_timeout_s),
        root_path=options.root_path,
    )
    server = uvicorn.Server(config)
    sock = socket.socket(fileno=fd)

    def stop() -> None:
        server.should_exit = True

    lifeline = asyncio.get_running_loop().create_task(watch_lifeline(stop))
    # Accept connections once the route table is here, so that no request that arrives
    # while the proxy starts gets a 404 (the kernel queues them meanwhile).
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(app.has_routes.wait(), ROUTES_WAIT_S)
    gc.freeze()  # start-up objects out of the cycle collector's sight: shorter GC pauses
    try:
        await server.serve(sockets=[sock])
    finally:
        lifeline.cancel()
        if grpc_server is not None:
            await grpc_server.stop(grace=1.0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m serval.proxy")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--name", default="proxy")
    parser.add_argument("--controller", required=True)
    parser.add_argument("--options", default="{}")
    args = parser.parse_args(argv)
    # A terminal's Ctrl-C reaches every process of its group; the controller decides
    # when this process stops (a drain, or its lifeline closing), not the keyboard.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    setup_logging(args.name, file_stem=args.name.replace(" ", "_").replace("/", "_"))
    _secret.load()  # from the controller (or our Ray host), over a pipe
    tracing.setup("proxy")
    options = HTTPOptions.model_validate_json(args.options)
    run_loop(serve(args.fd, args.name, args.controller, options))
    logging.shutdown()
