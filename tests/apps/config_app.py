"""A small application for config-file deploy tests (imported by import path)."""

from __future__ import annotations

import os

from starlette.requests import Request

import serval


@serval.deployment(num_replicas=1, user_config={"weight": 1.0}, graceful_shutdown_wait_loop_s=0.2)
class Weighted:
    def __init__(self) -> None:
        self.weight = 0.0

    def reconfigure(self, config: dict) -> None:
        self.weight = config["weight"]

    def __call__(self, request: Request) -> dict:
        return {"weight": self.weight, "pid": os.getpid()}


app = Weighted.bind()
