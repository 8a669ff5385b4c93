"""TOTP and recovery codes: right codes accepted once, everything else refused without raising."""

from __future__ import annotations

import base64
import hashlib
import re
import time
import xml.etree.ElementTree as ET
from urllib.parse import parse_qs, unquote, urlsplit

import pyotp
import pytest

from strongroom.errors import InvalidInput
from strongroom.identity import mfa

# A fixed secret and instant keep every test deterministic; pyotp is the reference implementation.
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
NOW = 1_700_000_015.0  # the middle of a 30-second step
STEP = int(NOW // 30)
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()


def code_at(step: int, secret: str = SECRET) -> str:
    return pyotp.TOTP(secret).at(step * 30)


def test_current_code_is_accepted_and_returns_its_step() -> None:
    assert mfa.verify_totp(SECRET, code_at(STEP), None, now=NOW) == STEP


@pytest.mark.parametrize("offset", [-1, 1])
def test_codes_one_step_either_side_are_accepted(offset: int) -> None:
    assert mfa.verify_totp(SECRET, code_at(STEP + offset), None, now=NOW) == STEP + offset


@pytest.mark.parametrize("offset", [-2, 2])
def test_codes_two_steps_away_are_refused(offset: int) -> None:
    far = code_at(STEP + offset)
    # Guard against a coincidence that would make the refusal untestable for this secret.
    assert far not in {code_at(STEP + near) for near in (-1, 0, 1)}
    assert mfa.verify_totp(SECRET, far, None, now=NOW) is None


def test_codes_at_the_edges_of_a_step_belong_to_that_step() -> None:
    assert mfa.verify_totp(SECRET, code_at(STEP), None, now=STEP * 30) == STEP
    assert mfa.verify_totp(SECRET, code_at(STEP), None, now=STEP * 30 + 29.999) == STEP


def test_a_code_is_refused_when_replayed() -> None:
    code = code_at(STEP)
    used = mfa.verify_totp(SECRET, code, None, now=NOW)
    assert used == STEP
    assert mfa.verify_totp(SECRET, code, used, now=NOW) is None
    assert mfa.verify_totp(SECRET, code, used, now=NOW + 10) is None


def test_an_older_code_is_refused_after_a_newer_one_was_used() -> None:
    older = code_at(STEP - 1)
    assert mfa.verify_totp(SECRET, older, None, now=NOW) == STEP - 1  # valid on its own
    used = mfa.verify_totp(SECRET, code_at(STEP), None, now=NOW)
    assert used == STEP
    assert mfa.verify_totp(SECRET, older, used, now=NOW) is None


def test_a_code_shared_by_two_steps_counts_as_the_later_one() -> None:
    # For SECRET, steps 56668234 and 56668235 both give "065554" (found by search). Taking the
    # later step means the code can never be used a second time for the other step.
    earlier, later = 56668234, 56668235
    assert code_at(earlier) == code_at(later) == "065554"
    now = later * 30 + 15
    assert mfa.verify_totp(SECRET, "065554", None, now=now) == later
    assert mfa.verify_totp(SECRET, "065554", earlier, now=now) == later
    assert mfa.verify_totp(SECRET, "065554", later, now=now) is None


def test_the_next_code_is_accepted_after_an_earlier_one_was_used() -> None:
    assert mfa.verify_totp(SECRET, code_at(STEP + 1), STEP, now=NOW) == STEP + 1


def test_spaces_in_a_code_are_ignored() -> None:
    code = code_at(STEP)
    assert mfa.verify_totp(SECRET, f" {code[:3]} {code[3:]}\n", None, now=NOW) == STEP


def _malformed_variants() -> list[str]:
    # Built from the valid code, so a check that only looks at a prefix or ignores junk fails.
    code = code_at(STEP)
    arabic_indic = "".join(chr(0x0660 + int(digit)) for digit in code)
    return [
        "",
        "   ",
        code[:5],
        code + "0",
        code[:5] + "a",
        "a" + code[1:],
        code[:3] + "-" + code[3:],
        "+" + code[1:],
        arabic_indic,
        "abcdef",
    ]


@pytest.mark.parametrize("index", range(len(_malformed_variants())))
def test_malformed_codes_are_refused_without_raising(index: int) -> None:
    assert mfa.verify_totp(SECRET, _malformed_variants()[index], None, now=NOW) is None


def test_a_wrong_code_is_refused() -> None:
    window = {code_at(STEP + offset) for offset in (-1, 0, 1)}
    wrong = next(f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in window)
    assert mfa.verify_totp(SECRET, wrong, None, now=NOW) is None


@pytest.mark.parametrize(
    ("unix_time", "eight_digit_code"),
    [
        (59, "94287082"),
        (1111111109, "07081804"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
    ],
)
def test_rfc_6238_sha1_test_vectors_verify(unix_time: int, eight_digit_code: str) -> None:
    # RFC 6238 appendix B; a 6-digit code is the same truncation modulo 10**6.
    code = eight_digit_code[-6:]
    assert mfa.verify_totp(RFC_SECRET, code, None, now=unix_time) == unix_time // 30


def test_the_clock_is_used_when_no_time_is_given() -> None:
    step = mfa.verify_totp(SECRET, pyotp.TOTP(SECRET).now(), None)
    assert step is not None
    assert abs(step - int(time.time() // 30)) <= 1


def test_new_secrets_are_160_random_bits_of_base32() -> None:
    first, second = mfa.new_totp_secret(), mfa.new_totp_secret()
    assert first != second
    assert re.fullmatch(r"[A-Z2-7]{32}", first)
    assert len(base64.b32decode(first)) == 20


@pytest.mark.parametrize(
    "secret",
    [
        "",
        "?! plainly wrong",
        "JBSWY3DPEHPK3PX1JBSWY3DPEHPK3PXP",  # "1" is not base32
        "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXPJ",  # 33 characters cannot be base32
        "JBSWY3DPEHPK3PXP",  # 80 bits, below the 128 RFC 4226 requires
    ],
)
def test_a_malformed_secret_raises_without_echoing_it(secret: str) -> None:
    with pytest.raises(InvalidInput) as verify_error:
        mfa.verify_totp(secret, "123456", None, now=NOW)
    with pytest.raises(InvalidInput) as uri_error:
        mfa.provisioning_uri(secret, "alice@example.com")
    for error in (verify_error.value, uri_error.value):
        assert "secret" in error.detail
        if secret.strip():
            assert secret not in error.detail
            assert secret[:8] not in error.detail


def test_provisioning_uri_carries_the_secret_issuer_and_defaults() -> None:
    uri = mfa.provisioning_uri(SECRET, "alice@example.com")
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert unquote(parts.path) == "/Strongroom:alice@example.com"
    query = parse_qs(parts.query, strict_parsing=True)
    assert query == {
        "secret": [SECRET],
        "issuer": ["Strongroom"],
        "algorithm": ["SHA1"],
        "digits": ["6"],
        "period": ["30"],
    }


def test_provisioning_uri_is_read_back_by_pyotp_as_the_same_generator() -> None:
    uri = mfa.provisioning_uri(SECRET, "bob@example.com", issuer="Acme: Data")
    parsed = pyotp.parse_uri(uri)
    assert isinstance(parsed, pyotp.TOTP)
    assert parsed.issuer == "Acme: Data"
    assert parsed.name == "bob@example.com"
    assert parsed.at(NOW) == code_at(STEP)


def test_provisioning_uri_refuses_an_empty_account() -> None:
    with pytest.raises(InvalidInput):
        mfa.provisioning_uri(SECRET, "  ")


def test_qr_svg_is_a_self_contained_svg_document() -> None:
    uri = mfa.provisioning_uri(SECRET, "alice@example.com")
    svg = mfa.qr_svg(uri)
    root = ET.fromstring(svg)  # noqa: S314 - our own output, not untrusted input
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.find("{http://www.w3.org/2000/svg}path") is not None
    assert not svg.startswith("<?xml")
    without_namespace = svg.replace('xmlns="http://www.w3.org/2000/svg"', "", 1)
    assert "http" not in without_namespace
    assert "href" not in svg
    assert SECRET not in svg  # the secret is only in the modules, not in readable text


def test_qr_svg_differs_for_different_uris() -> None:
    first = mfa.qr_svg(mfa.provisioning_uri(SECRET, "alice@example.com"))
    second = mfa.qr_svg(mfa.provisioning_uri(RFC_SECRET, "alice@example.com"))
    assert first != second


RECOVERY_CODE = re.compile(r"[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{4}")


def test_recovery_codes_are_unique_and_well_formed() -> None:
    codes = mfa.new_recovery_codes()
    assert len(codes) == 10
    assert len(set(codes)) == 10
    assert all(RECOVERY_CODE.fullmatch(code) for code in codes)
    assert set(mfa.new_recovery_codes(20)).isdisjoint(codes)
    assert len(mfa.new_recovery_codes(3)) == 3


def test_recovery_codes_use_no_ambiguous_letters() -> None:
    symbols = "".join(mfa.new_recovery_codes(200)).replace("-", "")
    assert not set(symbols) & set("ilou")
    assert len(set(symbols)) == 32  # 2,400 draws reach every symbol of the alphabet


def test_asking_for_no_recovery_codes_is_refused() -> None:
    with pytest.raises(InvalidInput):
        mfa.new_recovery_codes(0)


def test_recovery_code_hash_ignores_case_hyphens_and_spaces() -> None:
    expected = hashlib.sha256(b"abcdefgh").hexdigest()
    for variant in ("ABCD-efgh", "abcdefgh", " abcd efgh ", "AB-CD-EF-GH"):
        assert mfa.hash_recovery_code(variant) == expected
    assert mfa.hash_recovery_code("abcd-efgj") != expected


def test_recovery_code_hash_reads_lookalike_letters_as_digits() -> None:
    assert mfa.hash_recovery_code("o1l0-iabc") == mfa.hash_recovery_code("0110-1abc")


def test_a_recovery_code_matches_its_own_hash_in_any_formatting() -> None:
    codes = mfa.new_recovery_codes()
    hashes = [mfa.hash_recovery_code(code) for code in codes]
    assert mfa.match_recovery_code(codes[3], hashes) == hashes[3]
    assert mfa.match_recovery_code(codes[7].upper().replace("-", " "), hashes) == hashes[7]


def test_a_used_recovery_code_stops_matching_once_removed() -> None:
    codes = mfa.new_recovery_codes()
    hashes = [mfa.hash_recovery_code(code) for code in codes]
    used = mfa.match_recovery_code(codes[0], hashes)
    assert used == hashes[0]
    remaining = [stored for stored in hashes if stored != used]
    assert mfa.match_recovery_code(codes[0], remaining) is None
    assert mfa.match_recovery_code(codes[1], remaining) == hashes[1]


@pytest.mark.parametrize("code", ["", "    ", "abcd-efgh", "abcd-efgh-jkmn-p", "abcd-efgh-jkmn"])
def test_unknown_or_malformed_recovery_codes_match_nothing(code: str) -> None:
    hashes = [mfa.hash_recovery_code(other) for other in mfa.new_recovery_codes()]
    hashes.append(mfa.hash_recovery_code(""))  # even a hash of nothing is not matched
    hashes.append(mfa.hash_recovery_code("abcd-efgh"))  # nor a code of the wrong shape
    assert mfa.match_recovery_code(code, hashes) is None


def test_match_accepts_any_iterable_of_hashes() -> None:
    code = mfa.new_recovery_codes(1)[0]
    stored = mfa.hash_recovery_code(code)
    assert mfa.match_recovery_code(code, iter([stored])) == stored
