"""The ``strongroom`` command."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
from typing import Annotated

import typer

from strongroom import __version__
from strongroom.audit import Actor
from strongroom.cli import accounts, audit, backup, client, keys, telemetry, tenant
from strongroom.cli._common import HomeOption, deployment, resolve_home, table
from strongroom.cli.client.errors import ClientError
from strongroom.config import Environment, load_settings
from strongroom.errors import InvalidInput, StrongroomError

app = typer.Typer(
    help="Strongroom: a self-hostable cloud for customers' personal data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(tenant.app, name="tenant")
app.add_typer(keys.app, name="keys")
app.add_typer(audit.app, name="audit")
app.add_typer(accounts.user_app, name="user")
app.add_typer(accounts.operator_app, name="operator")
app.add_typer(backup.app, name="backup")
app.add_typer(telemetry.app, name="telemetry")
app.command("restore")(backup.restore)


@app.command()
def init(
    home: HomeOption = None,
    environment: Annotated[
        Environment, typer.Option(help="production, test or development; bound into every key.")
    ] = Environment.PRODUCTION,
    database_url: Annotated[
        str, typer.Option(help="Metadata database URL (default: SQLite in HOME).")
    ] = "",
    demo: Annotated[
        bool,
        typer.Option(help="Also create tenant demo with an admin whose generated password is "
                     "written to HOME/demo-login.txt (not in production)."),
    ] = False,
) -> None:
    """Create a new deployment: settings, master key (0600), local CA and certificate, database."""
    from strongroom.deployment import initialise

    if demo and environment is Environment.PRODUCTION:
        raise InvalidInput("--demo is refused in production", hint="use --environment development")
    target = resolve_home(home)
    settings = initialise(target, environment, database_url, actor=Actor.cli())
    typer.echo(f"initialised a {settings.environment.value} deployment in {target}")
    if settings.sources.get("master_key") is None:
        typer.echo(f"master key: {settings.master_key_file} (back it up apart from the data)")
    typer.echo(f"clients trust: {target / 'tls' / 'ca.pem'}")
    if demo:
        from strongroom.cli._demo import create_demo

        with deployment(target) as dep:
            login_file = create_demo(dep, target)
        typer.echo(f"created tenant demo; its admin's login is in {login_file}")


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"https://[{host}]:{port}/" if ":" in host else f"https://{host}:{port}/"


def _exit_quietly(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


@app.command()
def serve(
    home: HomeOption = None,
    host: Annotated[
        str | None, typer.Option(help="Listen address (default: setting host).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (default: setting port).")] = None,
    operator_port: Annotated[
        int | None, typer.Option(help="Operator API port (default: setting operator_port).")
    ] = None,
) -> None:
    """Serve the HTTPS API. There is no plain-HTTP listener."""
    from strongroom.audit.startup import record_server_start, record_server_stop
    from strongroom.web.server import bind, build_server, check_certificate_policy

    settings = load_settings(resolve_home(home))
    check_certificate_policy(settings)
    with deployment(home) as dep:
        sock = bind(host or settings.host, settings.port if port is None else port)
        operator_sock = None
        try:
            operator_sock = bind(
                settings.operator_host,
                settings.operator_port if operator_port is None else operator_port,
            )
            server = build_server(dep, sock, operator_sock)
            url = _url(sock)
            # Fail-closed: a server whose start cannot be audited does not start.
            with dep.transaction() as session:
                record_server_start(session, dep.audit, Actor.cli(), settings, url)
            from strongroom.datasets.maintenance import recover_at_start, start_maintenance

            # Builds a dead process left "building" are failed before anyone can ask for them.
            recovered = recover_at_start(dep)
            if recovered.interrupted_builds:
                typer.echo(f"dataset builds interrupted earlier, now failed: "
                           f"{recovered.interrupted_builds}")
            maintenance = start_maintenance(dep)
            typer.echo(f"Strongroom ({settings.environment.value}) at {url}")
            typer.echo(f"operator API at {_url(operator_sock)}")
            typer.echo(f"trust this CA: {settings.home / 'tls' / 'ca.pem'}")
            # uvicorn re-raises the signal that stopped it; turn both into a normal exit
            # so the stop below is recorded.
            signal.signal(signal.SIGTERM, _exit_quietly)
            from strongroom.backup.scheduler import start_scheduler

            scheduler = start_scheduler(dep)
            typer.echo("backups: " + ("scheduled" if scheduler else "not scheduled "
                                      "(set backup_repository)"))
            with contextlib.suppress(KeyboardInterrupt, SystemExit):
                server.run(sockets=[sock, operator_sock])
            if scheduler is not None:
                scheduler.stop()
            maintenance.stop()
            with dep.transaction() as session:
                record_server_stop(session, dep.audit, Actor.cli())
        finally:
            sock.close()
            if operator_sock is not None:
                operator_sock.close()


@app.command("settings")
def show_settings(home: HomeOption = None) -> None:
    """Show every setting's effective value and where it came from. Secrets are masked."""
    settings = load_settings(resolve_home(home))
    typer.echo(table([tuple(r) for r in settings.describe()], ("SETTING", "VALUE", "FROM")))


@app.command()
def version() -> None:
    """Print the Strongroom version."""
    typer.echo(f"strongroom {__version__}")


# The tenant user's client (login, dataset, count, ...), listed after the operator's commands.
client.register(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point: our errors become one line on stderr and exit code 2, never a traceback."""
    # Everything we create (database, keys, objects) is for the owner only.
    os.umask(0o077)
    try:
        app(args=argv, prog_name="strongroom")
    except StrongroomError as exc:
        typer.echo(f"error: {exc.one_line()}", err=True)
        sys.exit(2)
    except ClientError as exc:
        # The tenant client: 1 when the server refused (4xx), 2 when it failed or is unreachable.
        typer.echo(f"error: {exc.message}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        # The reader went away (`strongroom audit export | head`): stop quietly, as cat does.
        # Point stdout at devnull so the interpreter's final flush cannot raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)


if __name__ == "__main__":
    main()
