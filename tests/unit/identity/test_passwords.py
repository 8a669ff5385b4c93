"""Password hashing and policy: real Argon2id, the real block list, no mocks."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import sys
import unicodedata
import zipfile
from pathlib import Path
from types import ModuleType

import pytest
from argon2 import PasswordHasher, Type, extract_parameters

from strongroom.errors import InvalidInput
from strongroom.identity import passwords
from strongroom.identity.passwords import (
    WeakPassword,
    WeakPasswordReason,
    _dummy_hash,
    burn_time,
    check_password,
    common_passwords,
    hash_password,
    needs_rehash,
    verify_password,
)

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "src" / "strongroom" / "identity" / "data"
TENANT = ["acme-corp", "Globex Industries"]
USER = ["alice.smith@example.org", "Alice Smith"]
CONTEXT = [*TENANT, *USER]
GOOD = "tulip moon jars"  # 15 characters, no context word, not common
PASSPHRASE_64 = "velvet otter borrows nine lanterns from quiet brass harbour mill"
PASSPHRASE_200 = (
    "the seventh lighthouse keeper counted gulls at dawn, wrote their number in blue ink, "
    "then fed the cat named Quince and walked the long pier twice before breakfast "
    "to hear the old bell buoy ring at sea"
)


def fullwidth(text: str) -> str:
    """``text`` as a CJK keyboard in full-width mode types it (U+FF01..U+FF5E)."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def refusal(password: str, *, has_mfa: bool = False, context: list[str] | None = None,
            ) -> WeakPassword:
    with pytest.raises(WeakPassword) as caught:
        check_password(password, has_mfa=has_mfa, context=CONTEXT if context is None else context)
    return caught.value


# -- hashing ------------------------------------------------------------------------------------


def test_hash_is_argon2id_with_owasp_parameters() -> None:
    stored = hash_password(GOOD)
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    params = extract_parameters(stored)
    assert (params.type, params.hash_len, params.salt_len) == (Type.ID, 32, 16)
    assert GOOD not in stored
    assert not needs_rehash(stored)


def test_hashes_are_salted_and_verify() -> None:
    first, second = hash_password(GOOD), hash_password(GOOD)
    assert first != second
    assert verify_password(first, GOOD)
    assert verify_password(second, GOOD)


@pytest.mark.parametrize("wrong", ["tulip moon jar", "Tulip moon jars", "tulip moon jars ", ""])
def test_verify_is_false_for_a_wrong_password(wrong: str) -> None:
    assert not verify_password(hash_password(GOOD), wrong)


def _garbage_hashes() -> list[str]:
    real = hash_password(GOOD)
    flipped = real[:-2] + ("A" if real[-2] != "A" else "B") + real[-1]
    return [
        "",
        "not a hash",
        "$argon2id$",
        "$argon2id$v=19$m=19456,t=2,p=1$",
        "$argon2id$v=19$m=lots,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaA",
        "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",  # bcrypt
        real[:40],  # truncated
        flipped,  # tampered digest
        real.replace("$argon2id$", "$argon2ïd$"),  # not ASCII
        real.replace("$argon2id$", "$argon2xx$"),  # unknown variant
    ]


@pytest.mark.parametrize("index", range(len(_garbage_hashes())))
def test_verify_is_false_and_never_raises_for_garbage_hashes(index: int) -> None:
    assert not verify_password(_garbage_hashes()[index], GOOD)


@pytest.mark.parametrize(
    ("time_cost", "memory_cost", "parallelism"),
    [(65, 8, 1), (1, 8 * 65, 65)],
    ids=["time-cost-over-limit", "parallelism-over-limit"],
)
def test_verify_refuses_hashes_beyond_sane_limits(
    time_cost: int, memory_cost: int, parallelism: int,
) -> None:
    # Cheap to make, but over the ceilings: a planted row must not buy unbounded work.
    hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost,
                            parallelism=parallelism, type=Type.ID)
    assert not verify_password(hasher.hash(GOOD), GOOD)


@pytest.mark.parametrize(
    "hasher",
    [
        PasswordHasher(time_cost=1, memory_cost=19456, parallelism=1, type=Type.ID),
        PasswordHasher(time_cost=2, memory_cost=8192, parallelism=1, type=Type.ID),
        PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1, type=Type.I),
        PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1, salt_len=8, type=Type.ID),
        PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1, hash_len=16, type=Type.ID),
    ],
    ids=["lower-time", "lower-memory", "argon2i", "shorter-salt", "shorter-hash"],
)
def test_weaker_hashes_still_verify_and_need_rehash(hasher: PasswordHasher) -> None:
    old = hasher.hash(GOOD)
    assert verify_password(old, GOOD)  # the login succeeds, then the caller rehashes
    assert needs_rehash(old)


def test_stronger_hashes_are_not_downgraded() -> None:
    stronger = PasswordHasher(time_cost=3, memory_cost=32768, parallelism=2, type=Type.ID)
    stored = stronger.hash(GOOD)
    assert verify_password(stored, GOOD)
    assert not needs_rehash(stored)


@pytest.mark.parametrize("garbage", ["", "not a hash", "$argon2id$v=19$m=x,t=2,p=1$a$b"])
def test_unparseable_hashes_need_rehash(garbage: str) -> None:
    assert needs_rehash(garbage)


def test_burn_time_verifies_against_a_hash_with_the_current_parameters() -> None:
    # Equal cost is a matter of equal work: the dummy hash is a real Argon2id hash made
    # with today's parameters (timings themselves belong in benchmarks/auth_bench.py).
    dummy = _dummy_hash()
    assert dummy.startswith("$argon2id$")
    assert not needs_rehash(dummy)
    assert dummy.split("$")[3] == hash_password(GOOD).split("$")[3]
    burn_time("any guess")  # and it never raises for a wrong password


# -- normalisation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "stored_as"),
    [
        (fullwidth("Correct Horse 9"), "Correct Horse 9"),  # fullwidth vs ASCII
        ("Correct Horse 9", fullwidth("Correct Horse 9")),
        ("cafe\u0301 cre\u0300me bru\u0302le\u0301e", "café crème brûlée"),  # decomposed
        ("café crème brûlée", "cafe\u0301 cre\u0300me bru\u0302le\u0301e"),
    ],
    ids=["fullwidth-typed", "fullwidth-stored", "decomposed-typed", "decomposed-stored"],
)
def test_equivalent_forms_verify_against_each_other(typed: str, stored_as: str) -> None:
    assert typed != stored_as
    assert verify_password(hash_password(stored_as), typed)


def test_check_returns_the_nfkc_form() -> None:
    typed = fullwidth(GOOD)
    assert typed != GOOD
    assert check_password(typed, has_mfa=False, context=[]) == GOOD


def test_length_is_counted_after_normalising() -> None:
    composed = "déjà été à côté"
    raw = unicodedata.normalize("NFD", composed)
    assert (len(composed), len(raw)) == (15, 22)
    assert check_password(raw, has_mfa=False, context=[]) == composed
    # 13 code points once composed, 19 as typed: too short, whatever the keyboard sent
    short = unicodedata.normalize("NFD", "déjà été à cô")
    assert len(short) >= 15
    assert refusal(short, context=[]).reason is WeakPasswordReason.TOO_SHORT


# -- length -------------------------------------------------------------------------------------


def test_fifteen_characters_are_enough_as_the_only_factor() -> None:
    assert len(GOOD) == 15
    assert check_password(GOOD, has_mfa=False, context=CONTEXT) == GOOD


def test_fourteen_characters_are_too_short_as_the_only_factor() -> None:
    error = refusal(GOOD[:-1])
    assert error.reason is WeakPasswordReason.TOO_SHORT
    assert "at least 15 characters" in error.detail


def test_eight_characters_are_enough_with_mfa_only() -> None:
    eight = "vq7!mz2k"
    assert check_password(eight, has_mfa=True, context=CONTEXT) == eight
    without_mfa = refusal(eight, has_mfa=False)
    assert without_mfa.reason is WeakPasswordReason.TOO_SHORT
    seven = refusal(eight[:-1], has_mfa=True)
    assert seven.reason is WeakPasswordReason.TOO_SHORT
    assert "at least 8 characters" in seven.detail


@pytest.mark.parametrize("password", [PASSPHRASE_64, PASSPHRASE_200], ids=["64", "200"])
def test_long_passphrases_with_spaces_are_accepted_and_verify(password: str) -> None:
    assert len(password) in {64, 200}
    assert check_password(password, has_mfa=False, context=CONTEXT) == password
    assert verify_password(hash_password(password), password)


def _varied(length: int) -> str:
    # CJK ideographs in a scrambled order: nothing repeats, nothing runs in sequence.
    return "".join(chr(0x4E00 + (i * 7919) % 20_000) for i in range(length))


def test_maximum_length_is_256_code_points() -> None:
    assert check_password(_varied(256), has_mfa=False, context=[]) == _varied(256)
    error = refusal(_varied(257), context=[])
    assert error.reason is WeakPasswordReason.TOO_LONG
    assert "256" in error.detail


def test_huge_input_is_refused_as_too_long() -> None:
    huge = _varied(5000)
    assert refusal(huge, context=[]).reason is WeakPasswordReason.TOO_LONG
    with pytest.raises(WeakPassword):
        hash_password(huge)
    # Even a hash that matches it (made by hand, hash_password refuses) is not checked.
    matching = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(huge)
    assert not verify_password(matching, huge)


def test_emoji_and_non_latin_passwords_are_accepted_and_verify() -> None:
    password = "🔐 ключ от сейфа 金庫の鍵 🗝️ κλειδί"
    assert check_password(password, has_mfa=False, context=CONTEXT) == password
    stored = hash_password(password)
    assert verify_password(stored, password)
    assert not verify_password(stored, password.replace("🔐", "🔒"))


# -- block list ---------------------------------------------------------------------------------


def test_block_list_is_large_and_holds_the_usual_suspects() -> None:
    blocked = common_passwords()
    assert len(blocked) >= 20_000
    assert {"password", "123456", "qwerty", "iloveyou", "1234567890qwerty"} <= blocked
    assert common_passwords() is blocked  # loaded once


def test_block_list_entries_are_in_the_form_compared() -> None:
    for entry in common_passwords():
        assert entry == unicodedata.normalize("NFKC", entry).lower(), entry
        assert "\n" not in entry
        assert entry


def test_notice_credits_both_sources_and_matches_the_list() -> None:
    notice = (DATA / "NOTICE.md").read_text(encoding="utf-8")
    digest = hashlib.sha256((DATA / passwords.COMMON_PASSWORDS_FILE).read_bytes()).hexdigest()
    assert f"{len(common_passwords()):,} passwords" in notice
    assert digest in notice
    for needle in ["Royce Williams", "Django Software Foundation", "Redistribution and use",
                   "MIT License", "Permission is hereby granted", "zxcvbn"]:
        assert needle in notice


@pytest.mark.parametrize(
    ("password", "has_mfa"),
    [
        ("password", True),
        ("PassWord", True),  # case does not matter
        (fullwidth("password"), True),  # nor the keyboard's width
        ("iloveyou ", True),  # nor a trailing space
        ("1234567890qwerty", False),  # long enough to be the only factor, still common
        ("1q2w3e4r5t6y7u8i", False),
    ],
)
def test_common_passwords_are_refused(password: str, has_mfa: bool) -> None:
    error = refusal(password, has_mfa=has_mfa, context=[])
    assert error.reason is WeakPasswordReason.COMMON
    assert "is one of the most commonly used passwords" in error.detail


# -- context words ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "word"),
    [
        ("my acme vault is safe", "acme"),  # tenant slug
        ("globex quarterly secrets", "globex"),  # tenant name
        ("SMITH family photos 2024", "smith"),  # email local part, any case
        ("alice keeps the keys here", "alice"),
        ("example lanterns at noon", "example"),  # email domain label
        ("guarding the STRONGROOM at night", "strongroom"),  # always
    ],
)
def test_context_words_are_refused_without_being_named(password: str, word: str) -> None:
    error = refusal(password)
    assert error.reason is WeakPasswordReason.CONTEXT
    assert word not in error.one_line().casefold()


def test_strongroom_is_refused_with_no_context_at_all() -> None:
    assert refusal("Strongroom forever and ever", context=[]).reason is WeakPasswordReason.CONTEXT


def test_short_context_pieces_and_the_top_level_domain_are_ignored() -> None:
    context = ["Bo", "xy-co", "bo@acme.info"]
    accepted = "bonbons in the blue box, info desk"
    assert check_password(accepted, has_mfa=False, context=context) == accepted
    assert refusal("acme bonbons in the box", context=context).reason is WeakPasswordReason.CONTEXT


# -- repetition and sequences -------------------------------------------------------------------


@pytest.mark.parametrize(
    "password",
    [
        "aaaaaaaaaaaaaaaa",
        "AaAaAaAaAaAaAaAa",
        "                ",
        "😀" * 16,
        "1234567890123456",
        "9876543210987654",
        "abcdefghijklmnopq",
        "zyxwvutsrqponmlkj",
        "abababababababab",
        "xyz!xyz!xyz!xyz!",
        "catdogcatdogcatdog",
        "42424242",  # with MFA below
    ],
)
def test_repetitive_and_sequential_passwords_are_refused(password: str) -> None:
    error = refusal(password, has_mfa=len(password) < 15, context=[])
    assert error.reason is WeakPasswordReason.REPETITIVE


@pytest.mark.parametrize(
    "password",
    ["1234567890123465", "correcthorsecorrecthorse", "aaaaaaaaaaaaaab!", "abcdefghijklmnoz"],
)
def test_near_misses_are_not_called_repetitive(password: str) -> None:
    assert check_password(password, has_mfa=False, context=[]) == password


# -- the error ----------------------------------------------------------------------------------


def test_weak_password_is_a_422_invalid_input_with_its_own_slug() -> None:
    error = refusal("x7!")
    assert isinstance(error, InvalidInput)
    assert (error.status, error.slug) == (422, "weak-password")
    assert error.hint  # says how to choose a good one


@pytest.mark.parametrize(
    ("password", "has_mfa"),
    [
        ("Zq9#k", False),  # too short
        ("Zq9#kWm2", False),  # too short without MFA
        (_varied(300), False),  # too long
        ("Zq9Zq9Zq9Zq9Zq9Zq9", False),  # repetitive
        ("1q2w3e4r5t6y7u8i", False),  # common
        ("acme Zq9#kWm2 vault", False),  # context
        (fullwidth("Zq9#kWm2 smith room"), False),  # context, found after NFKC
    ],
)
def test_messages_never_contain_the_password(password: str, has_mfa: bool) -> None:
    error = refusal(password, has_mfa=has_mfa)
    normalised = unicodedata.normalize("NFKC", password)
    message = f"{error.one_line()} {error.title} {error}".casefold()
    for form in {password, normalised}:
        assert form.casefold() not in message
        # nor any telling piece of it
        assert form.casefold()[:5] not in message


# -- the build script ---------------------------------------------------------------------------


def _load_script(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    path = ROOT / "scripts" / "build_password_blocklist.py"
    spec = importlib.util.spec_from_file_location("build_password_blocklist", path)
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the class is created
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def _wheel(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
    return path


def test_build_script_unions_normalises_and_credits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    django_list = "\n".join(["Password", "123456", *(f"dj{i}" for i in range(15_000))]) + "\n"
    django = _wheel(tmp_path / "django-9.9-py3-none-any.whl", {
        "django/contrib/auth/common-passwords.txt.gz": gzip.compress(django_list.encode()),
        "django-9.9.dist-info/METADATA": b"Name: Django\nVersion: 9.9\n",
        "django-9.9.dist-info/licenses/LICENSE": b"Django licence text, BSD-3-Clause\n",
    })
    words = ",".join(["password", fullwidth("qwerty"), *(f"zx{i}" for i in range(10_000))])
    zxcvbn = _wheel(tmp_path / "zxcvbn-8.8-py3-none-any.whl", {
        "zxcvbn/frequency_lists.py": (
            f'FREQUENCY_LISTS = {{\n    "passwords": "{words}".split(","),\n'
            f'    "surnames": "smith,jones".split(","),\n}}\n'
        ).encode(),
        "zxcvbn-8.8.dist-info/METADATA": b"Name: zxcvbn\nVersion: 8.8\n",
        "zxcvbn-8.8.dist-info/LICENSE.txt": b"MIT License\n\nzxcvbn licence text\n",
    })
    out = tmp_path / "out"
    script = _load_script(monkeypatch)
    assert script.main([str(django), str(zxcvbn), "--out", str(out)]) == 0

    packed = (out / "common-passwords.txt.gz").read_bytes()
    entries = gzip.GzipFile(fileobj=io.BytesIO(packed)).read().decode().split("\n")[:-1]
    assert entries == sorted(set(entries))
    assert {"password", "123456", "qwerty", "dj0", "zx9999"} <= set(entries)
    assert "smith" not in entries  # only the passwords list is taken
    assert len(entries) == 2 + 1 + 15_000 + 10_000  # password, 123456, qwerty + the rest
    notice = (out / "NOTICE.md").read_text()
    assert "Django licence text, BSD-3-Clause" in notice
    assert "zxcvbn licence text" in notice
    assert f"{len(entries):,} passwords" in notice

    assert script.main([str(django), str(zxcvbn), "--out", str(out)]) == 0
    assert (out / "common-passwords.txt.gz").read_bytes() == packed  # reproducible
    assert packed[4:8] == bytes(4)  # the gzip header carries no timestamp


def test_build_script_refuses_a_list_under_twenty_thousand(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    django = _wheel(tmp_path / "django.whl", {
        "django/contrib/auth/common-passwords.txt.gz": gzip.compress(b"password\n"),
        "django-1.dist-info/METADATA": b"Version: 1\n",
        "django-1.dist-info/LICENSE": b"licence\n",
    })
    zxcvbn = _wheel(tmp_path / "zxcvbn.whl", {
        "zxcvbn/frequency_lists.py": b'FREQUENCY_LISTS = {"passwords": "a,b".split(",")}\n',
        "zxcvbn-1.dist-info/METADATA": b"Version: 1\n",
        "zxcvbn-1.dist-info/LICENSE.txt": b"licence\n",
    })
    with pytest.raises(SystemExit, match="at least 20000"):
        _load_script(monkeypatch).main([str(django), str(zxcvbn), "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()
