"""The ``serval`` command line: run, start, deploy, status, logs, shutdown.

Examples::

    serval run app:app                  # foreground; Ctrl-C shuts down
    serval start --http-port 8000       # a detached instance
    serval deploy app:app --name shop   # deploy to the running instance
    serval status
    serval logs --follow --replica ID   # a replica's log (access lines included)
    serval shutdown
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

import click
from rich.console import Console
from rich.table import Table

console = Console(stderr=True)


def _kv_args(pairs: tuple[str, ...]) -> dict[str, str]:
    """Builder arguments: ``key=value`` (Ray Serve's form), ``--key value`` or
    ``--key=value``."""
    out: dict[str, str] = {}
    items = list(pairs)
    while items:
        item = items.pop(0)
        if item.startswith("--") and len(item) > 2:
            key, sep, value = item[2:].partition("=")
            if not sep:
                if not items or items[0].startswith("--"):
                    raise click.BadParameter(f"{item} needs a value", param_hint="ARGS")
                value = items.pop(0)
            out[key] = value
            continue
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not key=value or --key value", param_hint="ARGS")
        out[key] = value
    return out


def _fail(exc: Exception) -> None:
    console.print(f"[bold red]error:[/] {exc}")
    sys.exit(1)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="serval")
def main() -> None:
    """serval: serve any Python model or function, one model or thousands."""


def _http_options(host: str | None, port: int | None, timeout: float | None) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    if host is not None:
        opts["host"] = host
    if port is not None:
        opts["port"] = port
    if timeout is not None:
        opts["request_timeout_s"] = timeout
    return opts


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("target")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option("--name", default="default", show_default=True, help="Application name.")
@click.option("--route-prefix", default="/", show_default=True)
@click.option("--host", "--http-host", "host", default=None, help="HTTP host (127.0.0.1).")
@click.option("--port", "--http-port", "port", type=int, default=None, help="HTTP port (8000).")
@click.option("--request-timeout-s", type=float, default=None)
@click.option("--runtime", default=None, help="local (default) or ray.")
def run(
    target: str,
    args: tuple[str, ...],
    name: str,
    route_prefix: str,
    host: str | None,
    port: int | None,
    request_timeout_s: float | None,
    runtime: str | None,
) -> None:
    """Run TARGET (module:app) in the foreground until Ctrl-C. ARGS go to a builder
    function: key=value or --key value (serval run serval.apps.many_models:app
    --registry /srv/models)."""
    import serval

    try:
        app = _load(target, _kv_args(args))
        serval.start(http_options=_http_options(host, port, request_timeout_s), runtime=runtime)
        serval.run(app, name=name, route_prefix=None if route_prefix == "none" else route_prefix)
        st = serval.status()
        console.print(
            f"[green]serval is serving[/] {target} as {name!r} at "
            f"http://{st.http_host}:{st.http_port}{route_prefix}  (Ctrl-C to stop)"
        )
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        console.print("shutting down")
        serval.shutdown()
    except Exception as exc:
        serval.shutdown()
        _fail(exc)


def _load(target: str, args: dict[str, str]) -> Any:
    from serval._import import load_application

    return load_application(target, args)


@main.command()
@click.option("--http-host", default=None)
@click.option("--http-port", type=int, default=None)
@click.option("--request-timeout-s", type=float, default=None)
@click.option("--runtime", default=None)
def start(
    http_host: str | None,
    http_port: int | None,
    request_timeout_s: float | None,
    runtime: str | None,
) -> None:
    """Start a detached serval instance on this machine."""
    import serval
    from serval import _driver

    try:
        if _driver.controller_answers(_driver.controller_address()):
            console.print("serval is already running")
            return
        serval.start(
            http_options=_http_options(http_host, http_port, request_timeout_s),
            detached=True,
            runtime=runtime,
        )
        st = serval.status()
    except Exception as exc:
        _fail(exc)
    console.print(
        f"[green]serval started[/]: HTTP on http://{st.http_host}:{st.http_port}, "
        f"state in {_driver.state_dir()}"
    )


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("target")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option("--name", default="default", show_default=True)
@click.option("--route-prefix", default="/", show_default=True)
@click.option("--canary", default=None, help="Deploy beside NAME with this share: 10% or 0.1.")
@click.option("--sticky-header", default=None, help="With --canary: keep users on one version.")
def deploy(
    target: str,
    args: tuple[str, ...],
    name: str,
    route_prefix: str,
    canary: str | None,
    sticky_header: str | None,
) -> None:
    """Deploy TARGET (module:app, or a config file: serval.yaml) to the running instance."""
    import serval
    from serval import _driver

    try:
        if target.endswith((".yaml", ".yml")):
            _deploy_file(target)
            return
        app = _load(target, _kv_args(args))
        _driver.connect()
        split: dict[str, Any] | None = None
        if canary is not None:
            from serval.canary import parse_weight

            split = {"weight": parse_weight(canary), "sticky_header": sticky_header}
        serval.run(
            app,
            name=name,
            route_prefix=None if route_prefix == "none" else route_prefix,
            canary=split,
            _import_path=target,
        )
    except Exception as exc:
        _fail(exc)
    console.print(f"[green]deployed[/] {target} as {name!r}")


def _deploy_file(path: str) -> None:
    import serval
    from serval import _driver
    from serval._apply import apply_config
    from serval.schema import load_config

    try:
        with open(path) as f:
            config = load_config(f.read(), source=path)
    except OSError as exc:
        _fail(exc)
    if _driver.controller_answers(_driver.controller_address()):
        _driver.connect()
    else:
        tracing = config.tracing_config.model_dump() if config.tracing_config else None
        serval.start(
            http_options=config.effective_http_options(), tracing_config=tracing, detached=True
        )
    found = apply_config(config)
    for line in found:
        console.print(f"[yellow]notice[/] {line}")
    names = ", ".join(a.name for a in config.applications)
    console.print(f"[green]applied[/] {path}: {names}")


@main.command()
@click.argument("target")
@click.option("--name", default="default", show_default=True)
@click.option("--route-prefix", default="/", show_default=True)
def build(target: str, name: str, route_prefix: str) -> None:
    """Print the config file of TARGET (module:app) with every deployment's options."""
    from serval._apply import build_config
    from serval.schema import dump_config

    try:
        config = build_config(target, name, None if route_prefix == "none" else route_prefix)
    except Exception as exc:
        _fail(exc)
    click.echo(dump_config(config), nl=False)


@main.command()
def config() -> None:
    """Print what is running, as a config file."""
    from serval._apply import running_config
    from serval.schema import dump_config

    try:
        click.echo(dump_config(running_config()), nl=False)
    except Exception as exc:
        _fail(exc)


@main.command()
@click.argument("name")
def promote(name: str) -> None:
    """The canary of application NAME replaces it."""
    import serval

    try:
        serval.promote(name)
    except Exception as exc:
        _fail(exc)
    console.print(f"[green]promoted[/] the canary of {name!r}")


@main.command()
@click.argument("name")
def rollback(name: str) -> None:
    """Remove the canary of application NAME."""
    import serval

    try:
        serval.rollback(name)
    except Exception as exc:
        _fail(exc)
    console.print(f"rolled back the canary of {name!r}")


@main.command()
def status() -> None:
    """Show applications, deployments and replicas."""
    import serval

    try:
        st = serval.status()
    except Exception as exc:
        _fail(exc)
    table = Table(title=f"serval at http://{st.http_host}:{st.http_port}")
    for col in ("application", "status", "route", "deployment", "deployment status", "replicas"):
        table.add_column(col)
    for app_name, app in sorted(st.applications.items()):
        for i, (dname, dep) in enumerate(sorted(app.deployments.items())):
            replicas = ", ".join(f"{n} {s.lower()}" for s, n in sorted(dep.replica_states.items()))
            table.add_row(
                app_name if i == 0 else "",
                app.status.value if i == 0 else "",
                (app.route_prefix or "-") if i == 0 else "",
                dname,
                dep.status.value,
                replicas or "-",
            )
        if app.message:
            table.add_row("", "", "", f"[red]{app.message.splitlines()[-1]}[/]", "", "")
    Console().print(table)
    for proxy, state in st.proxies.items():
        Console().print(f"{proxy}: {state.value}")


@main.command()
@click.option("-y", "--yes", is_flag=True, help="Do not ask.")
def shutdown(yes: bool) -> None:
    """Delete every application and stop serval."""
    import serval
    from serval import _driver

    if not _driver.controller_answers(_driver.controller_address()) and (
        not _driver.supervisor_running()
    ):
        console.print("serval is not running")
        return
    if not yes and sys.stdin.isatty() and not click.confirm("Shut down serval?"):
        return
    try:
        serval.shutdown()
    except Exception as exc:
        _fail(exc)
    console.print("serval stopped")


@main.command()
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines (Ctrl-C stops).")
@click.option("--replica", "replica", default=None, help="Only this replica (its id).")
@click.option(
    "--component",
    type=click.Choice(["controller", "proxy", "replica"]),
    default=None,
    help="Only the controller's, the proxies' or the replicas' logs.",
)
@click.option("-n", "--lines", "last", type=int, default=200, show_default=True)
@click.option("--logs-dir", default=None, help="Default: the instance's state dir logs/.")
def logs(
    follow: bool, replica: str | None, component: str | None, last: int, logs_dir: str | None
) -> None:
    """Print the instance's logs (controller, proxies, replicas; access lines included)."""
    from serval.observability import logs as logs_mod
    from serval.observability import logs_files

    directory = logs_dir or logs_mod.logs_dir(logs_mod.default_config())
    try:
        files = logs_files.select(directory, replica, component)
        records, tails = logs_files.read(files, last or None)
    except Exception as exc:
        _fail(exc)
    out = sys.stdout
    for record in records:
        out.write(record + "\n")
    out.flush()
    if not follow:
        return
    pick = (lambda: files) if replica else (lambda: logs_files.select(directory, None, component))
    try:
        for record in logs_files.follow(tails, pick):
            out.write(record + "\n")
            out.flush()
    except KeyboardInterrupt:
        pass


def _register_models() -> None:
    from serval._cli_models import models

    main.add_command(models)


_register_models()


if __name__ == "__main__":  # pragma: no cover
    logging.basicConfig(level=os.environ.get("SERVAL_LOG_LEVEL", "INFO"))
    main()
