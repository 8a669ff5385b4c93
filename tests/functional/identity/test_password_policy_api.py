"""The password policy over HTTP: an admin adding a user, and a user changing theirs.

Refusals are 422 weak-password problems whose detail says which rule; long and emoji
passwords are accepted and then actually work for logging in.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from strongroom.identity.models import Role
from tests.functional.identity.support import (
    Account,
    World,
    bearer,
    csrf_header,
    login,
    problem,
    problem_slug,
)

# (password, words the refusal's detail must contain)
REFUSED = {
    "short": ("tiny words 7", "too short"),
    "blocked": ("qwertyuiop12345", "most commonly used"),
    "blocked, other case": ("KartoffelPuffer", "most commonly used"),
    "tenant slug": ("my alpha secret garden gate", "tenant's or the account's name"),
    "email word": ("newcomer tends the orchard", "tenant's or the account's name"),
    "service name": ("i love Strongroom so much", "name of this service"),
    "repetitive": ("abcabcabcabcabcabc", "repeated"),
    "too long": ("x" * 200 + "y" * 100, "too long"),
}
LONG = "the quick brown fox jumps over the lazy dog while seventy two owls watch quietly"
EMOJI = "🐙🦑 octopus and squid 🌊 under moonlight 🌙"
# Fullwidth forms (U+FF01-U+FF5E), as typed with an East Asian input method; NFKC maps them
# to ASCII. Spelt with escapes so that no reader mistakes them for the ASCII letters.
FULLWIDTH = "".join(chr(ord(c) + 0xFEE0) if c != " " else c for c in "passphrase of many words")
ACCEPTED = {"64+ characters": LONG, "emoji": EMOJI, "fullwidth": FULLWIDTH}


@pytest.fixture(scope="module")
def admin_client(world: World) -> Iterator[tuple[TestClient, dict[str, str]]]:
    with world.client() as client:
        yield client, csrf_header(login(client, world.account("alpha", Role.ADMIN)))


def new_email() -> str:
    return f"newcomer-{uuid.uuid4().hex[:6]}@alpha.example"


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_admin_creating_a_user_gets_the_reason_for_a_weak_password(
    admin_client: tuple[TestClient, dict[str, str]], case: str
) -> None:
    client, headers = admin_client
    password, reason = REFUSED[case]
    response = client.post("/api/v1/users", headers=headers,
                           json={"email": new_email(), "role": "viewer", "password": password})
    body = problem(response, 422)
    assert body["type"].endswith("/weak-password")
    assert reason in body["detail"]
    assert password not in response.text


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_long_emoji_and_fullwidth_passwords_are_accepted_and_work(
    world: World, admin_client: tuple[TestClient, dict[str, str]], case: str
) -> None:
    client, headers = admin_client
    email = new_email()
    password = ACCEPTED[case]
    created = client.post("/api/v1/users", headers=headers,
                          json={"email": email, "role": "viewer", "password": password})
    assert created.status_code == 201, created.text
    with world.client() as fresh:
        response = fresh.post("/api/v1/login",
                              json={"tenant": "alpha", "email": email, "password": password})
        assert response.status_code == 200, response.text


def test_a_fullwidth_password_matches_its_ascii_form(world: World) -> None:
    """NFKC: the same password typed on another keyboard still logs in."""
    account = world.add_user("alpha", Role.VIEWER, password=ACCEPTED["fullwidth"])
    with world.client() as client:
        response = client.post("/api/v1/login", json={
            "tenant": "alpha", "email": account.email, "password": "passphrase of many words"})
        assert response.status_code == 200, response.text


def test_a_token_holder_gets_the_same_reasons(world: World) -> None:
    with world.client() as client:
        response = client.post(
            "/api/v1/users", headers=bearer(world.account("alpha", Role.ADMIN)),
            json={"email": new_email(), "role": "analyst", "password": "short one"})
        assert problem_slug(response, 422) == "weak-password"


@pytest.fixture
def own(world: World) -> Iterator[tuple[Account, TestClient, dict[str, str]]]:
    account = world.add_user("alpha", Role.ANALYST)
    with world.client() as client:
        yield account, client, csrf_header(login(client, account))


@pytest.mark.parametrize("case", ["short", "blocked", "tenant slug", "service name"])
def test_changing_ones_password_applies_the_policy(
    own: tuple[Account, TestClient, dict[str, str]], case: str
) -> None:
    account, client, headers = own
    password, reason = REFUSED[case]
    response = client.post("/api/v1/me/password", headers=headers,
                           json={"current_password": account.password, "new_password": password})
    assert reason in problem(response, 422)["detail"]


def test_changing_ones_password_refuses_the_own_email_words(
    own: tuple[Account, TestClient, dict[str, str]],
) -> None:
    account, client, headers = own
    local = account.email.split("@")[0]  # e.g. analyst-1a2b3c4d
    response = client.post("/api/v1/me/password", headers=headers, json={
        "current_password": account.password, "new_password": f"{local} rides a bicycle"})
    assert "tenant's or the account's name" in problem(response, 422)["detail"]


def test_changing_ones_password_needs_the_current_one(
    own: tuple[Account, TestClient, dict[str, str]],
) -> None:
    _account, client, headers = own
    response = client.post("/api/v1/me/password", headers=headers,
                           json={"current_password": "not my password", "new_password": LONG})
    assert problem_slug(response, 403) == "reauthentication-required"


def test_a_changed_password_replaces_the_old_one(
    world: World, own: tuple[Account, TestClient, dict[str, str]],
) -> None:
    account, client, headers = own
    response = client.post("/api/v1/me/password", headers=headers,
                           json={"current_password": account.password, "new_password": EMOJI})
    assert response.status_code == 204, response.text
    with world.client() as fresh:
        old = fresh.post("/api/v1/login", json={
            "tenant": "alpha", "email": account.email, "password": account.password})
        assert problem_slug(old, 401) == "bad-credentials"
        new = fresh.post("/api/v1/login", json={
            "tenant": "alpha", "email": account.email, "password": EMOJI})
        assert new.status_code == 200
