"""The ``strongroom`` command, run as the operator runs it: the installed script in a subprocess.

"Bad input" cases each must stop with exit code 2, one line on stderr that
starts with ``error:`` and names the problem, no traceback, and nothing made
or changed on disk.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

import strongroom
from strongroom.cli.main import app as cli_app
from strongroom.cli.main import main
from tests.functional.support import (
    assert_clean_failure,
    assert_ok,
    init_home,
    listing,
    run_cli,
)

RUNNING_AS_ROOT = os.geteuid() == 0


@dataclass
class Outcome:
    code: int
    out: str
    err: str

    def ok(self) -> str:
        assert self.code == 0, f"exit {self.code}: {self.err}"
        return self.out


@pytest.fixture
def cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Outcome]:
    """``strongroom.cli.main.main`` in this process: same entry point, without a new interpreter.

    Used for the long happy-path flows; exit codes and stderr of failures are
    checked with the installed script in a subprocess.
    """

    def call(*args: str | Path, env: dict[str, str] | None = None) -> Outcome:
        capsys.readouterr()
        umask = os.umask(0o077)
        with monkeypatch.context() as patch:
            for name, value in (env or {}).items():
                patch.setenv(name, value)
            try:
                main([str(a) for a in args])
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
            finally:
                os.umask(umask)
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    return call


@pytest.fixture(scope="module")
def template_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One deployment made by ``strongroom init`` and opened once (its steady state)."""
    home = init_home(tmp_path_factory.mktemp("template") / "home")
    assert_ok(run_cli("tenant", "list", "--home", home))
    return home


@pytest.fixture
def fresh_home(tmp_path: Path, template_home: Path) -> Path:
    """A private copy of the template (modes kept), cheaper than a new init per case."""
    return Path(shutil.copytree(template_home, tmp_path / "home", symlinks=True))


@pytest.fixture(scope="module")
def other_key(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The master key of another, unrelated deployment."""
    home = init_home(tmp_path_factory.mktemp("other") / "home")
    return (home / "master.key").read_text().strip()


# -- version and help ---------------------------------------------------------------------------


def test_version() -> None:
    assert assert_ok(run_cli("version")).strip() == f"strongroom {strongroom.__version__}"


def _subcommands(command: Any) -> dict[str, Any]:
    # Typer's groups carry their subcommands in ``commands`` (whichever click it uses).
    found = getattr(command, "commands", None)
    return dict(found) if isinstance(found, dict) else {}


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for name, command in sorted(_subcommands(group).items()):
        yield (*prefix, name), command
        yield from _commands(command, (*prefix, name))


def test_every_command_has_help_text() -> None:
    """Walk the real command tree: each command documents itself and answers --help."""
    commands = dict(_commands(typer.main.get_command(cli_app)))
    assert {("init",), ("serve",), ("settings",), ("version",), ("tenant", "create"),
            ("tenant", "list"), ("tenant", "suspend"), ("tenant", "resume"),
            ("keys", "rotate"), ("keys", "rewrap")} <= set(commands)
    runner = CliRunner()
    for path, command in commands.items():
        result = runner.invoke(cli_app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage:" in result.output
        assert (command.help or command.short_help or "").strip(), f"{path} has no help text"


def test_help_from_the_installed_script() -> None:
    out = assert_ok(run_cli("--help"))
    assert "init" in out
    assert "serve" in out


# -- init ---------------------------------------------------------------------------------------


def test_init_creates_a_private_deployment(tmp_path: Path) -> None:
    home = tmp_path / "deep" / "home"
    out = assert_ok(run_cli("init", "--home", home, "--environment", "development"))
    assert "development" in out
    assert str(home / "tls" / "ca.pem") in out
    key_file = home / "master.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(base64.b64decode(key_file.read_text().strip(), validate=True)) == 32
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    for private in ("tls/ca.key", "tls/server.key", "strongroom.db"):
        assert stat.S_IMODE((home / private).stat().st_mode) & 0o077 == 0, private
    assert (home / "strongroom.toml").read_text().count("environment") == 1
    assert_ok(run_cli("tenant", "list", "--home", home))


def test_init_refuses_an_existing_deployment(tmp_path: Path) -> None:
    home = init_home(tmp_path / "home")
    before = listing(home)
    key = (home / "master.key").read_bytes()
    result = run_cli("init", "--home", home, "--environment", "development")
    assert_clean_failure(result, "already holds a deployment")
    assert (home / "master.key").read_bytes() == key
    assert listing(home) == before


def test_init_refuses_a_home_with_only_a_key_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "master.key").write_text("not mine\n")
    assert_clean_failure(run_cli("init", "--home", home), "master.key exists")
    assert (home / "master.key").read_text() == "not mine\n"


def test_init_with_home_from_environment(tmp_path: Path) -> None:
    home = tmp_path / "env-home"
    assert_ok(run_cli("init", "--environment", "test", env={"STRONGROOM_HOME": str(home)}))
    out = assert_ok(run_cli("settings", env={"STRONGROOM_HOME": str(home)}))
    assert "environment                   test" in out or "test" in out.split("environment")[1]


def test_init_without_home_says_how() -> None:
    assert_clean_failure(run_cli("init"), "--home", "STRONGROOM_HOME")


@pytest.mark.parametrize(
    ("env", "args", "message"),
    [
        ({"STRONGROOM_COLOUR": "blue"}, [], "unknown environment variable STRONGROOM_COLOUR"),
        ({"STRONGROOM_DEBUG": "true"}, ["--environment", "production"], "debug mode"),
        ({"STRONGROOM_PORT": "eighty"}, [], "port"),
        (
            {},
            ["--database-url", "postgresql+psycopg://nobody@127.0.0.1:1/none"],
            "cannot use the metadata database",
        ),
        ({}, ["--database-url", "no-such-scheme"], "database_url"),
        ({}, ["--database-url", "mysql://u@localhost/db"], "SQLite or PostgreSQL"),
    ],
    ids=["unknown-env", "prod-debug", "bad-port", "db-unreachable", "db-garbage", "db-mysql"],
)
def test_failed_init_leaves_nothing_behind(
    tmp_path: Path, env: dict[str, str], args: list[str], message: str
) -> None:
    # A nested path: the directories init would have made are removed too.
    home = tmp_path / "a" / "b" / "home"
    result = run_cli("init", "--home", home, "--environment", "development", *args, env=env)
    assert_clean_failure(result, message)
    assert list(tmp_path.iterdir()) == []


def test_failed_init_in_an_existing_directory_keeps_it_empty(tmp_path: Path) -> None:
    """Failing late (at the database, after key, certificates and settings were written)."""
    empty = tmp_path / "empty"
    empty.mkdir(mode=0o750)
    result = run_cli("init", "--home", empty, "--environment", "development",
                     "--database-url", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert_clean_failure(result, "cannot use the metadata database")
    assert list(empty.iterdir()) == []
    assert empty.stat().st_mode & 0o777 == 0o750


@pytest.mark.parametrize("home_kind", ["file", "under-a-file"])
def test_init_refuses_a_home_that_cannot_be_a_directory(tmp_path: Path, home_kind: str) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    home = a_file if home_kind == "file" else a_file / "home"
    line = assert_clean_failure(run_cli("init", "--home", home), str(home))
    assert "not a directory" in line.lower()
    assert a_file.read_text() == "x"


# -- bad input to commands on an existing deployment --------------------------------------------


@dataclass
class Case:
    """Damage to a fresh home (or its environment) and the error it must produce."""

    message: str
    damage: Callable[[Path], object] = lambda _home: None
    env: Callable[[Path], dict[str, str]] = lambda _home: {}
    command: list[str] = field(default_factory=lambda: ["tenant", "list"])


def _append(text: str) -> Callable[[Path], None]:
    def damage(home: Path) -> None:
        with (home / "strongroom.toml").open("a") as handle:
            handle.write(text)

    return damage


def _chmod_key(mode: int) -> Callable[[Path], None]:
    return lambda home: (home / "master.key").chmod(mode)


CASES = {
    "unknown-setting-in-file": Case("unknown setting 'colour'", _append('colour = "blue"\n')),
    "unknown-table-in-file": Case("unknown setting 'server'", _append("[server]\nport = 1\n")),
    "unknown-env-var": Case(
        "unknown environment variable STRONGROOM_PROT", env=lambda _h: {"STRONGROOM_PROT": "1"}
    ),
    "malformed-toml": Case("is not valid TOML", _append("port = \n")),
    "toml-not-utf8": Case(
        "cannot read", lambda h: (h / "strongroom.toml").write_bytes(b"\xff\xfe")
    ),
    "wrong-type-in-file": Case("setting port", _append('port = "high"\n')),
    "bad-choice-in-env": Case(
        "must be one of production, test, development",
        env=lambda _h: {"STRONGROOM_ENVIRONMENT": "staging"},
    ),
    "bad-bool-in-env": Case("setting debug", env=lambda _h: {"STRONGROOM_DEBUG": "maybe"}),
    "master-key-in-file": Case(
        "may not be written in strongroom.toml", _append('master_key = "abc"\n')
    ),
    "missing-key-file": Case("is missing", lambda h: (h / "master.key").unlink()),
    "group-readable-key-file": Case("accessible by group or others (mode 640)", _chmod_key(0o640)),
    "world-readable-key-file": Case("accessible by group or others (mode 604)", _chmod_key(0o604)),
    "truncated-key-file": Case("expected 32", lambda h: (h / "master.key").write_text("AAAA\n")),
    "key-not-base64": Case(
        "STRONGROOM_MASTER_KEY is not valid base64", env=lambda _h: {"STRONGROOM_MASTER_KEY": "%%"}
    ),
    "other-environment": Case(
        "initialised as development", env=lambda _h: {"STRONGROOM_ENVIRONMENT": "test"}
    ),
    "home-is-a-file": Case(
        "not a directory", env=lambda h: {"STRONGROOM_HOME": str(h / "strongroom.toml")}
    ),
    "home-missing": Case(
        "does not exist", env=lambda h: {"STRONGROOM_HOME": str(h / "no-such-dir")}
    ),
    "bad-slug-traversal": Case("tenant slug", command=["tenant", "create", "../../etc"]),
    "bad-slug-upper": Case("tenant slug", command=["tenant", "create", "Acme"]),
    "bad-slug-short": Case("tenant slug", command=["tenant", "create", "ab"]),
    "bad-slug-suspend": Case("tenant slug", command=["tenant", "suspend", "a/b"]),
    "unknown-tenant": Case("no tenant with slug nobody", command=["tenant", "resume", "nobody"]),
    "rotate-unknown-tenant": Case(
        "no tenant with slug nobody", command=["keys", "rotate", "--tenant", "nobody"]
    ),
    "db-url-garbage-in-env": Case(
        "database_url from STRONGROOM_DATABASE_URL",
        env=lambda _h: {"STRONGROOM_DATABASE_URL": "::not a url::"},
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_input_is_one_clear_line_and_exit_2(
    tmp_path: Path, fresh_home: Path, case: Case
) -> None:
    home = fresh_home
    case.damage(home)
    env = case.env(home)
    before = listing(tmp_path)
    args = list(case.command)
    if "STRONGROOM_HOME" not in env:
        args += ["--home", str(home)]
    assert_clean_failure(run_cli(*args, env=env), case.message)
    assert listing(tmp_path) == before, "a failed command changed files"


def test_wrong_master_key_from_another_deployment(
    fresh_home: Path, other_key: str, cli: Callable[..., Outcome]
) -> None:
    home = fresh_home
    before = listing(home)
    result = run_cli("tenant", "list", "--home", home, env={"STRONGROOM_MASTER_KEY": other_key})
    line = assert_clean_failure(result, "does not open this deployment")
    assert other_key not in line
    assert listing(home) == before
    # The right key given the same way works, so the refusal was about the key.
    own = (home / "master.key").read_text().strip()
    cli("tenant", "list", "--home", home, env={"STRONGROOM_MASTER_KEY": own}).ok()


@pytest.mark.skipif(RUNNING_AS_ROOT, reason="root reads a mode-000 directory anyway")
def test_unreadable_home_directory(tmp_path: Path) -> None:
    """As an ordinary user, a home we cannot read stops every command.

    Tests often run as root (containers), and root ignores permission bits, so
    a chmod 000 home would be readable there; the "home is a file" and "home is
    missing" cases above cover the same check (``check_home``) for root.
    """
    home = init_home(tmp_path / "home")
    home.chmod(0)
    try:
        assert_clean_failure(run_cli("tenant", "list", "--home", home), "not readable")
    finally:
        home.chmod(0o700)


def test_a_good_home_works_with_the_same_commands(
    fresh_home: Path, cli: Callable[..., Outcome]
) -> None:
    """The control for the table above: undamaged, the same commands succeed."""
    home = fresh_home
    cli("tenant", "create", "acme-retail", "--home", home).ok()
    cli("tenant", "suspend", "acme-retail", "--home", home).ok()
    cli("tenant", "resume", "acme-retail", "--home", home).ok()
    cli("keys", "rotate", "--tenant", "acme-retail", "--home", home).ok()
    assert "acme-retail" in cli("tenant", "list", env={"STRONGROOM_HOME": str(home)}).ok()


# -- tenants and keys (also on PostgreSQL) ------------------------------------------------------


def test_tenant_lifecycle_and_key_rotation(
    tmp_path: Path, db_url: str, cli: Callable[..., Outcome]
) -> None:
    home = tmp_path / "home"
    args = ["--database-url", db_url] if db_url else []
    cli("init", "--home", home, "--environment", "development", *args).ok()
    assert "no tenants" in cli("tenant", "list", "--home", home).ok()
    cli("tenant", "create", "acme", "--name", "Acme Retail", "--home", home).ok()
    duplicate = cli("tenant", "create", "acme", "--home", home)
    assert duplicate.code == 2
    assert duplicate.err.startswith("error: ")
    assert "already exists" in duplicate.err
    cli("tenant", "suspend", "acme", "--home", home).ok()
    rows = json.loads(cli("tenant", "list", "--json", "--home", home).ok())
    assert [(r["slug"], r["name"], r["status"]) for r in rows] == [
        ("acme", "Acme Retail", "suspended")
    ]
    cli("tenant", "resume", "acme", "--home", home).ok()
    rows = json.loads(cli("tenant", "list", "--json", "--home", home).ok())
    assert rows[0]["status"] == "active"
    rotated = cli("keys", "rotate", "--tenant", "acme", "--home", home).ok()
    assert "key version 2 is now primary" in rotated
    assert "under version 2" in cli("keys", "rewrap", "--home", home).ok()


def test_init_refuses_a_database_that_already_holds_a_deployment(
    tmp_path: Path, db_url: str, cli: Callable[..., Outcome]
) -> None:
    if not db_url:
        pytest.skip("SQLite databases live in the home, which init already refuses")
    first = tmp_path / "first"
    cli("init", "--home", first, "--environment", "development", "--database-url", db_url).ok()
    second = tmp_path / "second"
    result = run_cli("init", "--home", second, "--database-url", db_url)
    assert_clean_failure(result, "already holds a deployment")
    assert not second.exists()
    cli("tenant", "list", "--home", first).ok()


def test_init_demo_creates_the_demo_tenant(tmp_path: Path, cli: Callable[..., Outcome]) -> None:
    home = tmp_path / "home"
    cli("init", "--home", home, "--environment", "development", "--demo").ok()
    rows = json.loads(cli("tenant", "list", "--json", "--home", home).ok())
    assert [r["slug"] for r in rows] == ["demo"]


# -- settings never print secrets ---------------------------------------------------------------


def test_settings_never_print_secrets(fresh_home: Path) -> None:
    home = fresh_home
    key = (home / "master.key").read_text().strip()
    password = "pg-pass-7f3a9c"
    env = {
        "STRONGROOM_MASTER_KEY": key,
        "STRONGROOM_DATABASE_URL": f"postgresql+psycopg://app:{password}@127.0.0.1:5432/test",
    }
    result = run_cli("settings", "--home", home, env=env)
    out = assert_ok(result)
    assert key not in out + result.stderr
    assert key[:12] not in out
    assert password not in out + result.stderr
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert "**********" in lines["master_key"]
    assert "environment" in lines["master_key"]
    assert "postgresql+psycopg://app:***@127.0.0.1:5432/test" in lines["database_url"]


def test_settings_show_where_each_value_came_from(
    fresh_home: Path, cli: Callable[..., Outcome]
) -> None:
    out = cli("settings", "--home", fresh_home, env={"STRONGROOM_PORT": "9443"}).ok()
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert lines["port"][1:] == ["9443", "environment"]
    assert lines["environment"][1:] == ["development", "file"]
    assert lines["log_level"][1:] == ["info", "default"]
    assert lines["master_key"][1:] == ["(not", "set)", "default"]
