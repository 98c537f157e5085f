"""``serval models ...``: the admin API from the command line.

Talks HTTP to the proxy's ``/-/admin/`` with the token from ``--token`` or
``SERVAL_ADMIN_TOKEN``; the address defaults to the running instance's.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, NoReturn

import click
import httpx
from rich.console import Console
from rich.table import Table

console = Console(stderr=True)


class _Admin:
    def __init__(self, url: str | None, token: str | None) -> None:
        self.token = token or os.environ.get("SERVAL_ADMIN_TOKEN", "")
        if not self.token:
            _die("the admin API needs a token: --token or SERVAL_ADMIN_TOKEN")
        if url is None:
            import serval

            st = serval.status()
            url = f"http://{st.http_host}:{st.http_port}"
        self.url = url.rstrip("/")

    def call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            r = httpx.request(
                method,
                f"{self.url}/-/admin/{path}",
                json=body,
                timeout=600,
                headers={"Authorization": f"Bearer {self.token}"},
            )
        except httpx.HTTPError as exc:
            _die(f"cannot reach {self.url}: {exc}")
        if r.status_code >= 400:
            try:
                detail = r.json().get("error", r.text)
            except ValueError:
                detail = r.text
            _die(f"{r.status_code}: {detail}")
        return r.json()


def _die(message: str) -> NoReturn:
    console.print(f"[bold red]error:[/] {message}")
    sys.exit(1)


@click.group("models")
@click.option("--url", default=None, help="serval's HTTP address (default: the running one).")
@click.option("--token", default=None, help="Admin token (default: $SERVAL_ADMIN_TOKEN).")
@click.pass_context
def models(ctx: click.Context, url: str | None, token: str | None) -> None:
    """Models: where they are loaded; prewarm, pin, evict, refresh; pools."""
    ctx.obj = (url, token)


def _admin(ctx: click.Context) -> _Admin:
    url, token = ctx.obj
    return _Admin(url, token)


@models.command("ls")
@click.pass_context
def ls(ctx: click.Context) -> None:
    """Which replica holds which model, with hit counts and sizes."""
    data = _admin(ctx).call("GET", "models")
    table = Table("deployment", "replica", "model", "hits", "MB", "pinned")
    for deployment, replicas in sorted(data.items()):
        for replica, held in sorted(replicas.items()):
            if not held:
                table.add_row(deployment, replica, "-", "", "", "")
            for model_id, info in held.items():
                size = info.get("bytes")
                table.add_row(
                    deployment,
                    replica,
                    model_id + (" (loading)" if info.get("loading") else ""),
                    str(info.get("hits", "")),
                    f"{size / 1e6:.2f}" if isinstance(size, int) else "",
                    "yes" if info.get("pinned") else "",
                )
    Console(width=200).print(table)


def _op(op: str) -> Any:
    @click.argument("app_deployment", metavar="APP/DEPLOYMENT")
    @click.argument("model_ids", nargs=-1, required=True)
    @click.pass_context
    def command(ctx: click.Context, app_deployment: str, model_ids: tuple[str, ...]) -> None:
        app, sep, deployment = app_deployment.partition("/")
        if not sep:
            _die(f"{app_deployment!r}: expected APP/DEPLOYMENT (see `serval status`)")
        result = _admin(ctx).call(
            "POST",
            f"models/{op}",
            {"app": app, "deployment": deployment, "model_ids": list(model_ids)},
        )
        click.echo(json.dumps(result, indent=2))

    command.__doc__ = f"{op.capitalize()} MODEL_IDS on the deployment's replicas."
    return command


for _name in ("prewarm", "pin", "unpin", "evict", "refresh"):
    models.command(_name)(_op(_name))


@models.command("pools")
@click.argument("app_deployment", metavar="APP/DEPLOYMENT")
@click.argument("mapping", required=False)
@click.pass_context
def pools(ctx: click.Context, app_deployment: str, mapping: str | None) -> None:
    """Set the tenant → pool table (JSON) of a many-models Dispatcher."""
    app, sep, deployment = app_deployment.partition("/")
    if not sep:
        _die(f"{app_deployment!r}: expected APP/DEPLOYMENT")
    if mapping is None:
        _die('give the mapping as JSON, e.g. \'{"tenant7": "pool1"}\'')
    try:
        table = json.loads(mapping)
    except json.JSONDecodeError as exc:
        _die(f"the mapping is not valid JSON: {exc}")
    result = _admin(ctx).call(
        "PUT",
        "user_config",
        {"app": app, "deployment": deployment, "user_config": {"mapping": table}},
    )
    click.echo(json.dumps(result.get("applications", {}).get(app, {}).get("status", result)))
