"""The operator's privacy key commands, through the real CLI on the served deployment:
`keys rotate-privacy` (audited), and `keys rewrap` re-wrapping privacy keys too."""

from __future__ import annotations

import json

from tests.functional.identity.support import problem_slug
from tests.functional.privacy_api.conftest import KEYS, REVERSE, Site
from tests.functional.support import assert_clean_failure, assert_ok, run_cli


def test_rotate_privacy_makes_a_new_version_and_is_audited(site: Site) -> None:
    admin = site.world.add_tenant("cli-rotate")
    [old] = site.tokens(admin, ["kim@cli-rotate.example"])
    after = site.world.last_seq()
    home = site.world.deployment.settings.home
    out = assert_ok(run_cli("keys", "rotate-privacy", "--tenant", "cli-rotate", "--home", home))
    assert "privacy key version 2 is now current" in out
    [event] = site.world.audit_events("user:privacy-key:rotate", after)
    assert (event.actor_kind, event.tenant_id, event.outcome) == (
        "operator", admin.tenant_id, "success")
    with site.client(admin) as client:
        assert client.get(KEYS).json()["current"] == 2
        answer = client.post(REVERSE, json={"tokens": [old]})
    assert answer.json() == {"values": ["kim@cli-rotate.example"]}


def test_rotate_privacy_of_an_unknown_tenant_fails_cleanly_and_is_audited(site: Site) -> None:
    after = site.world.last_seq()
    home = site.world.deployment.settings.home
    result = run_cli("keys", "rotate-privacy", "--tenant", "no-such-tenant", "--home", home)
    assert_clean_failure(result, "no tenant")
    [event] = site.world.audit_events("user:privacy-key:rotate", after)
    assert (event.outcome, event.reason) == ("failure", "not-found")


def test_rewrap_rewraps_privacy_keys_and_old_tokens_still_reverse(site: Site) -> None:
    admin = site.world.add_tenant("cli-rewrap")
    [first] = site.tokens(admin, ["liam@cli-rewrap.example"])
    home = site.world.deployment.settings.home
    assert_ok(run_cli("keys", "rotate-privacy", "--tenant", "cli-rewrap", "--home", home))
    [second] = site.tokens(admin, ["mia@cli-rewrap.example"])
    assert_ok(run_cli("keys", "rotate", "--tenant", "cli-rewrap", "--home", home))
    after = site.world.last_seq()
    out = assert_ok(run_cli("keys", "rewrap", "--tenant", "cli-rewrap", "--home", home))
    assert "re-wrapped 0 data keys and 2 privacy keys under version 2" in out
    [event] = site.world.audit_events("operator:keys:rewrap", after)
    assert json.loads(event.details)["privacy_keys_rewrapped"] == 2
    again = assert_ok(run_cli("keys", "rewrap", "--tenant", "cli-rewrap", "--home", home))
    assert "and 0 privacy keys" in again
    with site.client(admin) as client:
        answer = client.post(REVERSE, json={"tokens": [first, second]})
        assert answer.json() == {"values": ["liam@cli-rewrap.example", "mia@cli-rewrap.example"]}
        # The re-wrapped keys still make the same tokens.
        assert site.tokens(admin, ["mia@cli-rewrap.example"]) == [second]
        # ... and still refuse another tenant's.
        [foreign] = site.tokens("bravo", ["noah@bravo.example"])
        assert problem_slug(client.post(REVERSE, json={"tokens": [foreign]}), 422) == (
            "token-invalid")
