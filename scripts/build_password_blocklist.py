"""Build the common-password block list that ``strongroom.identity.passwords`` checks.

The list is the union, NFKC-normalised, lowercased and deduplicated, of two lists that
package registries carry, read straight from their wheels (neither package becomes a
dependency of ours):

- Django's ``django/contrib/auth/common-passwords.txt.gz``: the 20,000 common passwords
  compiled by Royce Williams that Django's ``CommonPasswordValidator`` uses (BSD-3-Clause);
- the ``passwords`` frequency list of the ``zxcvbn`` package, ``zxcvbn/frequency_lists.py``
  (MIT).

It writes ``src/strongroom/identity/data/common-passwords.txt.gz`` (one password a line,
sorted, gzip with a zero timestamp so the same inputs give the same bytes) and
``src/strongroom/identity/data/NOTICE.md``, which credits both sources and quotes the
licence files found in the wheels.

Usage:
  pip download --no-deps django zxcvbn -d /tmp/wheels
  python scripts/build_password_blocklist.py /tmp/wheels/django-*.whl /tmp/wheels/zxcvbn-*.whl
"""

from __future__ import annotations

import argparse
import ast
import gzip
import hashlib
import io
import sys
import unicodedata
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "src" / "strongroom" / "identity" / "data"
LIST_NAME = "common-passwords.txt.gz"
DJANGO_MEMBER = "django/contrib/auth/common-passwords.txt.gz"
ZXCVBN_MEMBER = "zxcvbn/frequency_lists.py"
# The strength checker refuses lists shorter than this; so does the test suite.
MINIMUM_ENTRIES = 20_000


@dataclass(frozen=True)
class Source:
    """One wheel's contribution: what it is, its licence file, and its passwords."""

    project: str
    version: str
    wheel: str
    wheel_sha256: str
    licence_member: str
    licence_text: str
    passwords: frozenset[str]


def normalise(entry: str) -> str:
    """The form the checker compares: NFKC, then lowercase (as ``passwords.py`` does)."""
    return unicodedata.normalize("NFKC", entry).lower()


def _clean(entries: Iterable[str]) -> frozenset[str]:
    return frozenset(normalise(e.strip()) for e in entries if e.strip())


def _metadata_version(wheel: zipfile.ZipFile) -> str:
    for name in wheel.namelist():
        if name.endswith(".dist-info/METADATA"):
            for line in wheel.read(name).decode("utf-8").splitlines():
                if line.startswith("Version:"):
                    return line.partition(":")[2].strip()
    raise SystemExit(f"{wheel.filename}: no Version in the wheel's METADATA")


def _licence(wheel: zipfile.ZipFile) -> tuple[str, str]:
    """The project's own licence file in ``*.dist-info`` (LICENSE or LICENSE.txt)."""
    for name in sorted(wheel.namelist()):
        path = PurePosixPath(name)
        in_dist_info = any(part.endswith(".dist-info") for part in path.parts[:-1])
        if in_dist_info and path.name in {"LICENSE", "LICENSE.txt", "LICENSE.md"}:
            return name, wheel.read(name).decode("utf-8").strip()
    raise SystemExit(f"{wheel.filename}: no LICENSE file in the wheel's .dist-info")


def _open_wheel(path: Path, member: str) -> tuple[zipfile.ZipFile, str]:
    if not zipfile.is_zipfile(path):
        raise SystemExit(f"{path}: not a wheel (missing, or not a zip file)")
    wheel = zipfile.ZipFile(path)
    if member not in wheel.namelist():
        raise SystemExit(f"{path}: has no {member}; is this the right wheel?")
    return wheel, hashlib.sha256(path.read_bytes()).hexdigest()


def read_django(path: Path) -> Source:
    """Django's gzipped list, one password a line."""
    wheel, digest = _open_wheel(path, DJANGO_MEMBER)
    with wheel:
        text = gzip.decompress(wheel.read(DJANGO_MEMBER)).decode("utf-8")
        member, licence = _licence(wheel)
        return Source("Django", _metadata_version(wheel), path.name, digest, member, licence,
                      _clean(text.splitlines()))


def read_zxcvbn(path: Path) -> Source:
    """zxcvbn's ``FREQUENCY_LISTS["passwords"]``, written as ``"a,b,c".split(",")``.

    The module is parsed, never imported or executed: only that one string literal is read.
    """
    wheel, digest = _open_wheel(path, ZXCVBN_MEMBER)
    with wheel:
        tree = ast.parse(wheel.read(ZXCVBN_MEMBER).decode("utf-8"))
        text = _zxcvbn_passwords_literal(tree)
        if text is None:
            raise SystemExit(f"{path}: no FREQUENCY_LISTS['passwords'] in {ZXCVBN_MEMBER}")
        member, licence = _licence(wheel)
        return Source("zxcvbn", _metadata_version(wheel), path.name, digest, member, licence,
                      _clean(text.split(",")))


def _zxcvbn_passwords_literal(tree: ast.Module) -> str | None:
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict)
                and any(isinstance(t, ast.Name) and t.id == "FREQUENCY_LISTS"
                        for t in node.targets)):
            continue
        for key, value in zip(node.value.keys, node.value.values, strict=True):
            if not (isinstance(key, ast.Constant) and key.value == "passwords"):
                continue
            # Either a plain string or the generator's '"...".split(",")'.
            literal = value
            if isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute):
                literal = value.func.value
            if isinstance(literal, ast.Constant) and isinstance(literal.value, str):
                return literal.value
    return None


def write_list(passwords: frozenset[str], target: Path) -> bytes:
    """Sorted, one a line, gzip without a name or timestamp so rebuilds are byte-identical."""
    raw = "".join(f"{p}\n" for p in sorted(passwords)).encode("utf-8")
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as gz:
        gz.write(raw)
    target.write_bytes(buffer.getvalue())
    return buffer.getvalue()


def _quoted(text: str) -> str:
    return "\n".join(f"    {line}".rstrip() for line in text.splitlines())


def notice(django: Source, zxcvbn: Source, total: int, list_sha256: str) -> str:
    """NOTICE.md: where every entry came from, under which licence, quoted in full."""
    return f"""# Common-password block list: sources and licences

`{LIST_NAME}` in this folder is the union, NFKC-normalised, lowercased and
deduplicated, of the two lists below: {total:,} passwords (SHA-256 of the file:
`{list_sha256}`).
`strongroom.identity.passwords` refuses any password on it.
It is generated by `scripts/build_password_blocklist.py` from the two wheels named
here; neither package is a dependency of Strongroom. Do not edit either file by
hand: run the script again.

## 1. Django's common-passwords list ({len(django.passwords):,} entries)

- Taken from `{DJANGO_MEMBER}` in `{django.wheel}`
  (Django {django.version}, wheel SHA-256 `{django.wheel_sha256}`).
- The list is the one Django's `CommonPasswordValidator` uses, which Django's
  `django/contrib/auth/password_validation.py` describes as "20000 common passwords
  (unhexed, lowercased and deduplicated), created by Royce Williams". Django
  distributes it under its BSD-3-Clause licence.
- Licence (`{django.licence_member}` in the wheel), quoted in full:

{_quoted(django.licence_text)}

## 2. zxcvbn's password frequency list ({len(zxcvbn.passwords):,} entries)

- Taken from the `passwords` entry of `FREQUENCY_LISTS` in `{ZXCVBN_MEMBER}` in
  `{zxcvbn.wheel}` (zxcvbn {zxcvbn.version}, the Python port of Dropbox's zxcvbn,
  wheel SHA-256 `{zxcvbn.wheel_sha256}`).
- Licence: MIT (`{zxcvbn.licence_member}` in the wheel), quoted in full:

{_quoted(zxcvbn.licence_text)}
"""


def main(argv: list[str] | None = None) -> int:
    """Read both wheels, write the list and its NOTICE, print the counts."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("django_wheel", type=Path, help="django-*.whl from the package registry")
    parser.add_argument("zxcvbn_wheel", type=Path, help="zxcvbn-*.whl from the package registry")
    parser.add_argument("--out", type=Path, default=DATA, help=f"output folder (default {DATA})")
    args = parser.parse_args(argv)

    django = read_django(args.django_wheel)
    zxcvbn = read_zxcvbn(args.zxcvbn_wheel)
    union = django.passwords | zxcvbn.passwords
    if len(union) < MINIMUM_ENTRIES:
        raise SystemExit(f"only {len(union)} passwords; at least {MINIMUM_ENTRIES} are required")

    args.out.mkdir(parents=True, exist_ok=True)
    data = write_list(union, args.out / LIST_NAME)
    text = notice(django, zxcvbn, len(union), hashlib.sha256(data).hexdigest())
    (args.out / "NOTICE.md").write_text(text, encoding="utf-8")
    sys.stdout.write(
        f"Django {django.version}: {len(django.passwords)}, zxcvbn {zxcvbn.version}: "
        f"{len(zxcvbn.passwords)}, union: {len(union)} -> {args.out / LIST_NAME}\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
