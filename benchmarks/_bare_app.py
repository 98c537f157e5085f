"""The hello-world handler as a bare uvicorn ASGI app: the limit serval is measured against.

``hello()`` is the handler body both systems run: serval's deployment returns it (a
``str`` becomes a ``text/plain; charset=utf-8`` response), and this app sends it with
the same content type, so both answer with the same bytes.

Run: python benchmarks/_bare_app.py PORT
"""

from __future__ import annotations

import sys
from typing import Any

import uvicorn

HEADERS = [(b"content-type", b"text/plain; charset=utf-8")]


def hello() -> str:
    return "Hello world!"


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": hello().encode()})


def main(port: int) -> None:
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        lifespan="off",
    )


if __name__ == "__main__":
    main(int(sys.argv[1]))
