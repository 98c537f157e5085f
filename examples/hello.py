"""The quick-start applications: ``serval run examples.hello:app`` or ``python examples/hello.py``.

curl 'http://127.0.0.1:8000/?name=x'         ->  Hello x!
"""

from __future__ import annotations

from starlette.requests import Request

import serval as serve


@serve.deployment
def hello(request: Request) -> str:
    return f"Hello {request.query_params['name']}!"


@serve.deployment(num_replicas=2, user_config={"weight": 0.5})
class SimpleModel:
    def __init__(self, bias: float) -> None:
        self.bias = bias
        self.weight = 1.0

    def reconfigure(self, config: dict) -> None:
        self.weight = config["weight"]

    async def __call__(self, request: Request | float) -> dict:
        data = float(request.query_params["data"]) if isinstance(request, Request) else request
        return {"prediction": data * self.weight + self.bias}


app = hello.bind()
model = SimpleModel.bind(1.0)

if __name__ == "__main__":
    serve.run(hello.bind(), name="hello", route_prefix="/hello")
    handle = serve.run(SimpleModel.bind(1.0), name="simple", route_prefix="/simple")
    print(handle.remote(2.0).result())
