"""Privacy key versions over real TLS: listed without material, rotated by a tenant admin
(audited), old tokens still reversing, and a racing rotation refused with 409."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from strongroom.identity.models import Role
from strongroom.privacy.keys import rotate_privacy_keys
from tests.functional.identity.support import Account, problem_slug
from tests.functional.privacy_api.conftest import KEYS, REVERSE, ROTATE, Site

ROTATE_TAG = "user:privacy-key:rotate"
# Each attempt waits longer for the racing request to reach its insert before the
# test's own rotation commits; the first attempt nearly always suffices.
RACE_ATTEMPTS = 6


def _versions(client: httpx.Client) -> tuple[int | None, list[int]]:
    answer = client.get(KEYS)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"current", "versions"}
    for entry in body["versions"]:
        assert set(entry) == {"version", "created_at"}  # and no key material
    return body["current"], [v["version"] for v in body["versions"]]


def test_keys_are_listed_without_material_and_reading_makes_none(site: Site) -> None:
    admin = site.world.add_tenant("listing")
    with site.client(admin) as client:
        assert _versions(client) == (None, [])  # no export yet: no key made by looking
        [token] = site.tokens(admin, ["heidi@listing.example"])
        assert token.startswith("t1_")
        assert _versions(client) == (1, [1])


def test_rotation_makes_a_new_version_and_old_tokens_still_reverse(site: Site) -> None:
    admin = site.world.add_tenant("rotating")
    [old] = site.tokens(admin, ["ivan@rotating.example"])
    after = site.world.last_seq()
    with site.client(admin) as client:
        rotated = client.post(ROTATE)
        assert rotated.status_code == 200, rotated.text
        assert rotated.json()["current"] == 2
        assert _versions(client) == (2, [1, 2])
        [new] = site.tokens(admin, ["ivan@rotating.example"])
        assert new.startswith("t2_")
        assert new != old
        answer = client.post(REVERSE, json={"tokens": [old, new]})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"values": ["ivan@rotating.example"] * 2}
    [event] = site.world.audit_events(ROTATE_TAG, after)
    assert (event.actor_id, event.outcome) == (admin.user_id, "success")
    assert json.loads(event.details) == {"version": 2, "previous": 1}


def test_analysts_and_viewers_may_not_rotate_or_list(site: Site) -> None:
    admin = site.account("alpha", Role.ADMIN)
    with site.client(admin) as client:
        before = _versions(client)
    for role in (Role.ANALYST, Role.VIEWER):
        with site.client(site.account("alpha", role)) as client:
            assert problem_slug(client.post(ROTATE), 403) == "permission-denied"
            assert problem_slug(client.get(KEYS), 403) == "permission-denied"
    with site.client(admin) as client:
        assert _versions(client) == before


def _race(site: Site, admin: Account, client: httpx.Client, wait: float) -> httpx.Response:
    """Rotate in a transaction held open while the admin's rotation request is sent."""
    dep = site.world.deployment
    with ThreadPoolExecutor(max_workers=1) as pool:
        with dep.transaction() as session:
            rotate_privacy_keys(session, dep, admin.tenant_id)
            sent = pool.submit(client.post, ROTATE)
            time.sleep(wait)  # not asserted on: a late request simply rotates after ours
        return sent.result(timeout=60)


def test_a_racing_rotation_is_refused_with_409_and_changes_nothing(site: Site) -> None:
    admin = site.world.add_tenant("racing")
    site.tokens(admin, ["judy@racing.example"])
    after = site.world.last_seq()
    with site.client(admin) as client:
        _versions(client)  # the token's first use is recorded now, not during the race
        for attempt in range(1, RACE_ATTEMPTS + 1):
            current, versions = _versions(client)
            assert current is not None
            answer = _race(site, admin, client, 0.2 * attempt)
            if answer.status_code == 409:
                break
            # The request came after the test's rotation: a version of its own, never a tie.
            assert answer.status_code == 200, answer.text
            assert answer.json()["current"] == current + 2
        else:
            raise AssertionError(f"no rotation raced in {RACE_ATTEMPTS} attempts")
        assert problem_slug(answer, 409) == "privacy-key-rotation"
        # Only the test's own rotation landed.
        assert _versions(client) == (current + 1, [*versions, current + 1])
    refused = [e for e in site.world.audit_events(ROTATE_TAG, after) if e.outcome != "success"]
    assert [(e.actor_id, e.outcome, e.reason) for e in refused] == [
        (admin.user_id, "failure", "privacy-key-rotation")]
