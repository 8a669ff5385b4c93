"""Reversing privacy tokens over real TLS: only a tenant admin, only the tenant's own
tokens, all or nothing, and every attempt audited without a token or a value in it."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable

import pytest

from strongroom.identity.models import Role
from tests.functional.identity.support import csrf_header, login, problem_slug
from tests.functional.privacy_api.conftest import REVERSE, REVERSE_TAG, Site

VALUES = ["alice@example.com", "+44 20 7946 0958", "ünïcødé ✓ name", ""]


def _reverse_events(site: Site, after: int) -> list[dict[str, object]]:
    return [
        {"actor": e.actor_id, "outcome": e.outcome, "reason": e.reason,
         "details": json.loads(e.details)}
        for e in site.world.audit_events(REVERSE_TAG, after)
    ]


def test_an_admin_reverses_tokens_made_for_an_export(site: Site) -> None:
    admin = site.account("alpha", Role.ADMIN)
    tokens = site.tokens("alpha", VALUES)
    after = site.world.last_seq()
    with site.client(admin) as client:
        answer = client.post(REVERSE, json={"tokens": tokens})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"values": VALUES}
    assert answer.headers["cache-control"] == "no-store"
    [event] = _reverse_events(site, after)
    assert (event["actor"], event["outcome"]) == (admin.user_id, "success")
    details = event["details"]
    assert isinstance(details, dict)
    assert details["count"] == len(tokens)
    assert details["key_versions"] == [int(tokens[0][1:].split("_")[0])]
    audit = site.audit_text(after)
    for secret in [*VALUES[:-1], *tokens]:
        assert secret not in audit


def test_an_admin_in_a_session_reverses_with_the_csrf_header(site: Site) -> None:
    admin = site.account("alpha", Role.ADMIN)
    [token] = site.tokens("alpha", ["carol@example.net"])
    with site.anonymous() as client:
        csrf = login(client, admin)  # type: ignore[arg-type]  # httpx.Client, same interface
        refused = client.post(REVERSE, json={"tokens": [token]})
        assert problem_slug(refused, 403) == "csrf"
        answer = client.post(REVERSE, json={"tokens": [token]}, headers=csrf_header(csrf))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"values": ["carol@example.net"]}


def test_tokens_in_a_real_export_reverse_to_the_exported_values(site: Site) -> None:
    """The whole path: an export with the token transform, downloaded, then reversed."""
    admin = site.account("alpha", Role.ADMIN)
    with site.client(admin) as client:
        made = client.post("/api/v1/exports", json={
            "dataset": "matrix",
            "columns": [{"name": "id", "transform": {"kind": "token"}}, {"name": "amount"}]})
        assert made.status_code == 201, made.text
        download = client.get(made.json()["download_url"])
        assert download.status_code == 200, download.text
        rows = list(csv.DictReader(io.StringIO(download.text)))
        tokens = [row["id"] for row in rows]
        assert tokens
        assert all(t.startswith("t") and "_" in t for t in tokens)
        answer = client.post(REVERSE, json={"tokens": tokens})
    assert answer.status_code == 200, answer.text
    assert sorted(answer.json()["values"]) == ["1", "2"]


@pytest.mark.parametrize("role", [Role.ANALYST, Role.VIEWER])
def test_analysts_and_viewers_are_refused_and_the_refusal_is_audited(
    site: Site, role: Role
) -> None:
    account = site.account("alpha", role)
    tokens = site.tokens("alpha", VALUES[:2])
    after = site.world.last_seq()
    with site.client(account) as client:
        answer = client.post(REVERSE, json={"tokens": tokens})
    assert problem_slug(answer, 403) == "permission-denied"
    for value in VALUES[:2]:
        assert value not in answer.text
    assert _reverse_events(site, after) == [{
        "actor": account.user_id, "outcome": "denied", "reason": "token-reversal-forbidden",
        "details": {"count": 2}}]
    # ... besides the guard's own access denial for the route.
    [denial] = site.world.audit_events("user:access:denied", after)
    assert (denial.actor_id, denial.reason) == (account.user_id, "permission-denied")
    assert denial.target == f"route:POST {REVERSE}"
    audit = site.audit_text(after)
    for secret in [*VALUES[:2], *tokens]:
        assert secret not in audit


def test_an_unauthenticated_request_is_401_and_no_reversal_is_recorded(site: Site) -> None:
    tokens = site.tokens("alpha", VALUES[:1])
    after = site.world.last_seq()
    with site.anonymous() as client:
        answer = client.post(REVERSE, json={"tokens": tokens})
    assert problem_slug(answer, 401) == "not-authenticated"
    assert _reverse_events(site, after) == []


def test_a_token_of_another_tenant_is_invalid_and_audited(site: Site) -> None:
    admin = site.account("alpha", Role.ADMIN)
    [foreign] = site.tokens("bravo", ["dave@bravo.example"])
    [own] = site.tokens("alpha", ["erin@alpha.example"])
    after = site.world.last_seq()
    with site.client(admin) as client:
        for tokens in ([foreign], [own, foreign]):
            answer = client.post(REVERSE, json={"tokens": tokens})
            assert problem_slug(answer, 422) == "token-invalid"
            assert "dave@bravo.example" not in answer.text
            assert "erin@alpha.example" not in answer.text
            assert foreign not in answer.text
    events = _reverse_events(site, after)
    assert events == [
        {"actor": admin.user_id, "outcome": "failure", "reason": "token-invalid",
         "details": {"count": 1}},
        {"actor": admin.user_id, "outcome": "failure", "reason": "token-invalid",
         "details": {"count": 2}},
    ]
    # Bravo's own admin reads it, so the 422 above was about the tenant, not the token.
    with site.client(site.account("bravo", Role.ADMIN)) as client:
        answer = client.post(REVERSE, json={"tokens": [foreign]})
    assert answer.json() == {"values": ["dave@bravo.example"]}
    assert "dave@bravo.example" not in site.audit_text(after)


TAMPERINGS: dict[str, Callable[[str], str]] = {
    "last character": lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),
    "inside the SIV": lambda t: t[:6] + ("A" if t[6] != "A" else "B") + t[7:],
    "extended": lambda t: t + "AA",
    "truncated": lambda t: t[:-4],
    "relabelled version": lambda t: "t9" + t[2:],
    "not a token": lambda t: "p" + t[1:],
    "empty payload": lambda t: t.split("_")[0] + "_",
}


@pytest.mark.parametrize("tamper", TAMPERINGS.values(), ids=TAMPERINGS.keys())
def test_a_tampered_token_is_invalid_and_nothing_is_returned(
    site: Site, tamper: Callable[[str], str]
) -> None:
    admin = site.account("alpha", Role.ADMIN)
    good, victim = site.tokens("alpha", ["frank@alpha.example", "grace@alpha.example"])
    after = site.world.last_seq()
    with site.client(admin) as client:
        answer = client.post(REVERSE, json={"tokens": [good, tamper(victim)]})
    assert problem_slug(answer, 422) == "token-invalid"
    assert "frank@alpha.example" not in answer.text  # all or nothing
    assert [e["reason"] for e in _reverse_events(site, after)] == ["token-invalid"]


@pytest.mark.parametrize("body", [
    {"tokens": []},
    {"tokens": ["t1_AAAA"] * 1001},
    {"tokens": [1]},
    {"tokens": [None]},
    {"tokens": "t1_AAAA"},
    {"tokens": ["t1_AAAA"], "tenant": "bravo"},
    {},
    {"tokens": ["t1_" + "A" * 5000]},
])
def test_malformed_requests_are_422_and_reverse_nothing(
    site: Site, body: dict[str, object]
) -> None:
    admin = site.account("alpha", Role.ADMIN)
    after = site.world.last_seq()
    with site.client(admin) as client:
        answer = client.post(REVERSE, json=body)
    assert answer.status_code in {413, 422}, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert _reverse_events(site, after) == []
