"""strongroom user ... and strongroom operator ...: accounts made by the operator."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from strongroom.audit import EventTag
from strongroom.cli._audited import audited_failure, record
from strongroom.cli._common import HomeOption, deployment
from strongroom.errors import InvalidInput
from strongroom.identity import services as identity
from strongroom.identity.permissions import parse_role
from strongroom.tenancy.services import get_tenant

user_app = typer.Typer(help="Create tenant users (there are no default accounts).",
                       no_args_is_help=True)
operator_app = typer.Typer(help="Create operator accounts (always with MFA).",
                           no_args_is_help=True)

PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input.")
]


def _read_password(from_stdin: bool) -> str:
    if not from_stdin:
        raise InvalidInput("pass --password-stdin and write the password to standard input",
                           hint="passwords are never taken as arguments (they would show in ps)")
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise InvalidInput("no password on standard input")
    return password


@user_app.command("create")
def create_user(
    tenant: Annotated[str, typer.Option("--tenant", help="Slug of the user's tenant.")],
    email: Annotated[str, typer.Option("--email", help="The user's email (their login).")],
    role: Annotated[str, typer.Option("--role", help="admin, analyst or viewer.")],
    password_stdin: PasswordStdin = False,
    home: HomeOption = None,
) -> None:
    """Create a user of a tenant; the password is read from standard input."""
    password = _read_password(password_stdin)
    parsed = parse_role(role)
    with deployment(home) as dep, audited_failure(dep, EventTag.USER_CREATE_CLI), \
            dep.transaction() as session:
        found = get_tenant(session, tenant)
        user = identity.create_user(session, dep.keys, found, email, parsed, password)
        record(dep, session, EventTag.USER_CREATE_CLI, tenant=found.id, target=f"user:{user.id}",
               details={"role": user.role})
    typer.echo(f"created {parsed.value} user {user.id} in tenant {tenant}")


@operator_app.command("create")
def create_operator(
    name: Annotated[str, typer.Argument(help="Operator login name (lower-case letters, digits).")],
    password_stdin: PasswordStdin = False,
    home: HomeOption = None,
) -> None:
    """Create an operator; prints the TOTP secret and recovery codes once."""
    password = _read_password(password_stdin)
    with deployment(home) as dep, audited_failure(dep, EventTag.OPERATOR_CREATE), \
            dep.transaction() as session:
        operator, enrolment, codes = identity.create_operator(session, dep.keys, name, password)
        record(dep, session, EventTag.OPERATOR_CREATE, target=f"operator:{operator.id}")
    typer.echo(f"created operator {name}")
    typer.echo(f"TOTP secret (add it to an authenticator app now): {enrolment['secret']}")
    typer.echo(f"otpauth URI: {enrolment['otpauth_uri']}")
    typer.echo("recovery codes (each works once; store them offline):")
    for code in codes:
        typer.echo(f"  {code}")
