"""Entry point of a replica process: ``python -m serval.replica ADDRESS REPLICA_ID``.

The process listens on ADDRESS and waits for the controller's ``InitReplica``. When
its standard input is a pipe (the supervisor's lifeline, shared with the controller on
the local runtime; its Ray host's on Ray), end-of-file there means serval is gone, and
the replica exits rather than linger as an orphan.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from serval import _secret
from serval._lifeline import run_loop, watch_lifeline
from serval.observability import tracing
from serval.observability.logs import setup_logging
from serval.replica.server import ReplicaServer
from serval.transport.address import listen


async def serve(address: str, replica_id: str) -> None:
    server = ReplicaServer(replica_id)
    server.listener = await listen(address, server.handle)
    lifeline = asyncio.get_running_loop().create_task(watch_lifeline(server.exit.set))
    await server.exit.wait()
    lifeline.cancel()
    server.listener.close()


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    address, replica_id = args[0], args[1]
    # A terminal's Ctrl-C reaches every process of its group; the controller decides
    # when this process stops (a drain, or its lifeline closing), not the keyboard.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    setup_logging(f"replica {replica_id}", file_stem=f"replica_{replica_id}")
    _secret.load()  # from the controller (or our Ray host), over a pipe
    tracing.setup(f"replica-{replica_id}")
    run_loop(serve(address, replica_id))
    logging.shutdown()
    # Threads running user code must not keep a drained replica alive.
    os._exit(0)
