"""The documentation keeps up with the code.

Fails when docs/cli.md or docs/settings.md differ from what scripts/gen_docs.py
makes of the CLI and the settings registry, when a command, option or setting
has no help text or no entry in the docs, when a top-level command is missing
from the operator guide, when a TOMs measure page is missing, or when a
relative link in the docs points nowhere. Everything is found by walking the
CLI and the registry, so new commands and settings are covered without edits here.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from strongroom.config import REGISTRY, Setting

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
MEASURES = (
    "access-control",
    "intrusion-prevention",
    "unauthorised-activities",
    "encryption-at-rest",
    "separation-control",
    "pseudonymisation",
    "transfer-control",
    "input-control",
    "availability-control",
    "resilience",
    "control-procedure",
    "order-control",
)
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen_docs = _load_generator()
COMMANDS = list(gen_docs.iter_commands())


def _read(path: Path) -> str:
    assert path.exists(), f"{path.relative_to(ROOT)} is missing"
    return path.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", ["cli.md", "settings.md"])
def test_generated_docs_are_current(name: str) -> None:
    expected = gen_docs.outputs()[DOCS / name]
    assert _read(DOCS / name) == expected, f"docs/{name} is stale: run `make docs` and commit it"


@pytest.mark.parametrize("setting", REGISTRY, ids=lambda s: s.name)
def test_every_setting_is_documented(setting: Setting) -> None:
    assert setting.help.strip(), f"setting {setting.name} has no help text"
    assert f"### `{setting.name}`" in _read(DOCS / "settings.md"), (
        f"setting {setting.name} is missing from docs/settings.md: run `make docs`"
    )


@pytest.mark.parametrize(
    ("path", "command", "ctx"), COMMANDS, ids=[" ".join(path) for path, _, _ in COMMANDS]
)
def test_every_command_is_documented(path: tuple[str, ...], command: Any, ctx: Any) -> None:
    title = " ".join(path)
    assert (command.help or "").strip(), f"`{title}` has no help text"
    for param in command.get_params(ctx):
        if not getattr(param, "hidden", False):
            assert (getattr(param, "help", None) or "").strip(), (
                f"`{title}` parameter {param.name} has no help text"
            )
    assert re.search(rf"^#+ `{re.escape(title)}`$", _read(DOCS / "cli.md"), re.MULTILINE), (
        f"`{title}` is missing from docs/cli.md: run `make docs`"
    )


def test_every_top_level_command_is_in_the_operator_guide() -> None:
    guide = _read(DOCS / "operator-guide.md")
    missing = [
        " ".join(path) for path, _, _ in COMMANDS if len(path) == 2 and " ".join(path) not in guide
    ]
    assert not missing, f"docs/operator-guide.md never mentions: {', '.join(missing)}"


@pytest.mark.parametrize("measure", MEASURES)
def test_every_measure_has_a_page_linked_from_the_index(measure: str) -> None:
    page = _read(DOCS / "measures" / f"{measure}.md")
    assert page.startswith("# "), f"measures/{measure}.md needs a title"
    for section in ("## Today", "## Planned"):
        assert section in page, f"measures/{measure}.md has no '{section}' section"
    assert f"(measures/{measure}.md)" in _read(DOCS / "index.md")


def test_index_links_every_page() -> None:
    index = _read(DOCS / "index.md")
    for page in sorted(DOCS.rglob("*.md")):
        relative = page.relative_to(DOCS).as_posix()
        if relative != "index.md":
            assert f"({relative})" in index, f"docs/index.md does not link {relative}"


@pytest.mark.parametrize(
    "page",
    [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))],
    ids=lambda p: p.relative_to(ROOT).as_posix(),
)
def test_relative_links_resolve(page: Path) -> None:
    for target in _LINK.findall(_read(page)):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        file_part = target.split("#", 1)[0]
        assert (page.parent / file_part).exists(), f"{page.name} links to missing {target}"
