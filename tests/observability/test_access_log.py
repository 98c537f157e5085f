"""The access log and logging_config, through real processes."""

from __future__ import annotations

import glob
import json
import os

import httpx
import pytest

import serval
from serval.exceptions import ConfigError
from tests.utils import wait_for


def _logs_dir(home: str) -> str:
    return os.path.join(home, "t", "logs")


def _replica_lines(home: str, needle: str) -> list[str]:
    lines: list[str] = []
    for path in sorted(glob.glob(os.path.join(_logs_dir(home), "replica_*.log"))):
        with open(path, encoding="utf-8") as f:
            lines += [line for line in f if needle in line]
    return lines


@serval.deployment
class Echo:
    async def __call__(self, request: object) -> str:
        return "ok"


def test_one_access_line_per_request_with_its_fields(
    serval_home: str, client: httpx.Client
) -> None:
    serval.run(Echo.bind(), name="echo", route_prefix="/echo")
    ids = [f"req-access-{i}" for i in range(7)]
    for rid in ids:
        r = client.get("/echo/x", headers={"x-request-id": rid, "serve_multiplexed_model_id": "m1"})
        assert r.status_code == 200
    wait_for(
        lambda: len(_replica_lines(serval_home, "serval.access")) >= len(ids),
        what="access lines in the replica's log file",
    )
    lines = _replica_lines(serval_home, "serval.access")
    for rid in ids:
        mine = [line for line in lines if f"request_id={rid} " in line]
        assert len(mine) == 1, (rid, lines)
        line = mine[0]
        assert " INFO " in line and "GET /echo/x 200 " in line and "ms " in line
        assert "application=echo deployment=Echo replica=" in line
        assert line.rstrip().endswith("model_id=m1")
    assert line[:4].isdigit()  # starts with the time


def test_json_encoding_parses(serval_home: str, client: httpx.Client) -> None:
    app = Echo.options(
        logging_config={"encoding": "JSON", "additional_log_standard_attrs": ["funcName"]}
    )
    serval.run(app.bind(), name="echo", route_prefix="/echo")
    assert client.get("/echo", headers={"x-request-id": "json-1"}).status_code == 200
    wait_for(lambda: _replica_lines(serval_home, '"json-1"'), what="the JSON access line")
    (line,) = _replica_lines(serval_home, '"json-1"')
    record = json.loads(line)
    assert record["logger"] == "serval.access"
    assert record["method"] == "GET" and record["path"] == "/echo"
    assert record["status_code"] == 200 and record["latency_ms"] >= 0
    assert record["application"] == "echo" and record["deployment"] == "Echo"
    assert record["replica"].startswith("Echo") or record["replica"]
    assert "funcName" in record and record["levelname"] == "INFO"


def test_access_log_off(serval_home: str, client: httpx.Client) -> None:
    serval.run(
        Echo.bind(), name="echo", route_prefix="/echo", logging_config={"enable_access_log": False}
    )
    on = Echo.options(name="Echo2")
    serval.run(on.bind(), name="echo2", route_prefix="/echo2")
    for _ in range(3):
        assert client.get("/echo").status_code == 200
    assert client.get("/echo2", headers={"x-request-id": "second"}).status_code == 200
    # The other application's line shows the files are flushed; the first wrote none.
    wait_for(lambda: _replica_lines(serval_home, "request_id=second"), what="echo2's line")
    assert _replica_lines(serval_home, "application=echo2")
    assert not _replica_lines(serval_home, "application=echo ")


@pytest.mark.parametrize(
    ("config", "option"),
    [
        ({"encoding": "XML"}, "logging_config.encoding"),
        ({"log_level": "LOUD"}, "logging_config.log_level"),
        ({"enable_acces_log": False}, "logging_config.enable_acces_log"),
        ({"additional_log_standard_attrs": ["nope"]}, "additional_log_standard_attrs"),
    ],
)
def test_invalid_logging_config_names_the_option(config: dict[str, object], option: str) -> None:
    with pytest.raises(ConfigError, match=option.replace(".", r"\.")):
        serval.deployment(logging_config=config)(Echo.func_or_class)
    with pytest.raises(ConfigError, match="logging_config"):
        serval.run(Echo.bind(), logging_config=config)
    with pytest.raises(ConfigError, match="logging_config"):
        serval.start(logging_config=config)


def test_config_file_logging_config_is_validated() -> None:
    from serval.schema import load_config

    text = """
applications:
  - name: a
    import_path: app:app
    logging_config: {encoding: JSON}
    deployments:
      - name: Model
        logging_config: {log_level: LOUD}
"""
    with pytest.raises(ConfigError, match=r"applications\[0\]\.deployments\[0\]\.logging_config"):
        load_config(text)
    ok = load_config(text.replace("LOUD", "DEBUG"))
    assert ok.applications[0].logging_config is not None
    assert ok.applications[0].logging_config.encoding == "JSON"
    assert ok.applications[0].deployments[0].overrides()["logging_config"]["log_level"] == "DEBUG"


@serval.deployment
class Front:
    def __init__(self, echo: serval.DeploymentHandle) -> None:
        self.echo = echo

    async def __call__(self, request: object) -> str:
        return await self.echo.options(multiplexed_model_id="m7").remote(request)


def test_handle_calls_carry_the_request_id_down_the_chain(
    serval_home: str, client: httpx.Client
) -> None:
    serval.run(Front.bind(Echo.bind()), name="chain", route_prefix="/chain")
    r = client.get("/chain", headers={"x-request-id": "chain-1"})
    assert r.status_code == 200
    wait_for(
        lambda: len(_replica_lines(serval_home, "request_id=chain-1 ")) == 2,
        what="both replicas' access lines",
    )
    front, echo = sorted(
        _replica_lines(serval_home, "request_id=chain-1 "), key=lambda line: "CALL" in line
    )
    assert "GET /chain 200 " in front and "deployment=Front" in front
    assert "CALL __call__ OK " in echo and "deployment=Echo" in echo
    assert echo.rstrip().endswith("model_id=m7")
