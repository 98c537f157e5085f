"""``make run``: start serval on its embedded defaults and show it answering.

Serves the quick-start applications (``examples/hello.py``'s deployments), sends them
requests over HTTP and through handles, prints what came back, and shuts down.
Options: ``python -m serval.demo --port 8000 --keep`` (``--keep`` serves until Ctrl-C).
"""

from __future__ import annotations

import argparse
import time
import urllib.request

from rich.console import Console
from rich.table import Table
from starlette.requests import Request

import serval as serve

console = Console()


@serve.deployment
def hello(request: Request) -> str:
    return f"Hello {request.query_params['name']}!"


@serve.deployment(num_replicas=2, user_config={"weight": 0.5})
class SimpleModel:
    def __init__(self, bias: float) -> None:
        self.bias = bias
        self.weight = 1.0

    def reconfigure(self, config: dict[str, float]) -> None:
        self.weight = config["weight"]

    async def __call__(self, request: Request | float) -> dict[str, float]:
        data = float(request.query_params["data"]) if isinstance(request, Request) else request
        return {"prediction": data * self.weight + self.bias}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m serval.demo")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--keep", action="store_true", help="keep serving until Ctrl-C")
    args = parser.parse_args(argv)
    base = f"http://127.0.0.1:{args.port}"
    started = time.perf_counter()
    serve.start(http_options={"port": args.port})
    serve.run(hello.bind(), name="hello", route_prefix="/hello")
    # mypy does not see that a class decorator returns a Deployment
    handle = serve.run(SimpleModel.bind(1.0), name="simple", route_prefix="/simple")  # type: ignore[attr-defined]
    console.print(f"[green]serval is up[/] in {time.perf_counter() - started:.2f}s at {base}")
    table = Table("call", "answer")
    for url in (f"{base}/hello?name=serval", f"{base}/simple?data=3"):
        with urllib.request.urlopen(url) as r:
            table.add_row(f"curl '{url}'", r.read().decode())
    table.add_row("handle.remote(2.0).result()", str(handle.remote(2.0).result()))
    console.print(table)
    if args.keep:
        serve.api._block_until_interrupted()
    else:
        serve.shutdown()


if __name__ == "__main__":
    main()
