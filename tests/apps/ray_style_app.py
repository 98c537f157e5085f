"""A Ray Serve app with only the import changed (for the Ray config-file tests)."""

from __future__ import annotations

import os

from starlette.requests import Request

import serval as serve


@serve.deployment(num_replicas=2, ray_actor_options={"num_cpus": 0.5}, user_config={"weight": 2})
class Model:
    def reconfigure(self, config: dict[str, float]) -> None:
        self.weight = config["weight"]

    async def info(self) -> dict[str, object]:
        return {
            "weight": self.weight,
            "greeting": os.environ.get("GREETING"),
            "cwd": os.getcwd(),
        }


@serve.deployment
class Ingress:
    def __init__(self, model: serve.DeploymentHandle) -> None:
        self.model = model

    async def __call__(self, request: Request) -> dict[str, object]:
        result: dict[str, object] = await self.model.info.remote()
        return result


app = Ingress.bind(Model.bind())
