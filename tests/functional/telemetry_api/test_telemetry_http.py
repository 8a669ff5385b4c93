"""The insider programme over HTTP, and the operator's export through the real CLI.

Joining is the user's own act, in an interactive session; leaving works however
they are signed in; nobody can choose for somebody else. The export and the
database hold no identifier of a user who has not opted in.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import stat
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from strongroom.identity.models import Role
from strongroom.telemetry.models import UsageEvent
from tests.functional.identity.support import (
    Account,
    World,
    bearer,
    csrf_header,
    login,
    problem,
    problem_slug,
)
from tests.functional.support import assert_clean_failure, assert_ok, run_cli
from tests.unit.tenancy.test_clone import scan

URL = "/api/v1/me/telemetry"


def _get(world: World, account: Account) -> dict[str, Any]:
    with world.client() as client:
        response = client.get(URL, headers=bearer(account))
    assert response.status_code == 200, response.text
    return dict(response.json())


def _put_in_session(world: World, account: Account, body: object) -> Any:
    with world.client() as client:
        csrf = login(client, account)
        return client.put(URL, headers=csrf_header(csrf), json=body)


def _events_of(world: World, account: Account) -> list[UsageEvent]:
    with world.deployment.transaction() as session:
        key = world.deployment.keys.telemetry_key(session)
        from strongroom.telemetry.services import user_pseudonym

        pseudonym = user_pseudonym(key, account.user_id)
        return list(session.scalars(
            sa.select(UsageEvent).where(UsageEvent.subject == pseudonym).order_by(UsageEvent.id)
        ))


def test_nobody_is_an_insider_by_default(world: World) -> None:
    state = _get(world, world.account("alpha", Role.VIEWER))
    assert state == {"insider": False, "changed_at": None, "recording": True}


def test_a_user_joins_in_a_session_and_leaves_even_by_token(world: World) -> None:
    account = world.add_user("alpha", Role.VIEWER)
    after = world.last_seq()
    joined = _put_in_session(world, account, {"insider": True})
    assert joined.status_code == 200, joined.text
    assert joined.json()["insider"] is True
    assert joined.json()["changed_at"] is not None
    assert _get(world, account)["insider"] is True
    [event] = world.audit_events("user:telemetry:insider-join", after)
    assert (event.actor_id, event.target, event.outcome) == (
        account.user_id, f"user:{account.user_id}", "success")
    with world.client() as client:
        left = client.put(URL, headers=bearer(account), json={"insider": False})
    assert left.status_code == 200, left.text
    assert left.json()["insider"] is False
    assert [e.actor_id for e in world.audit_events("user:telemetry:insider-leave", after)] == [
        account.user_id]


def test_a_token_cannot_join_and_the_refusal_is_audited(world: World) -> None:
    account = world.add_user("alpha", Role.ANALYST)
    after = world.last_seq()
    with world.client() as client:
        response = client.put(URL, headers=bearer(account), json={"insider": True})
    assert "interactive session" in problem(response, 403)["detail"]
    assert _get(world, account)["insider"] is False
    [denied] = world.audit_events("user:telemetry:insider-join", after)
    assert (denied.outcome, denied.reason) == ("denied", "permission-denied")


def test_an_admin_chooses_for_themselves_only(world: World) -> None:
    admin = world.add_user("alpha", Role.ADMIN)
    analyst = world.add_user("alpha", Role.ANALYST)
    # There is no field for whom: naming another user is refused as an unknown field.
    refused = _put_in_session(world, admin, {"insider": True, "user_id": analyst.user_id})
    assert problem(refused, 422)["status"] == 422
    assert _put_in_session(world, admin, {"insider": True}).status_code == 200
    assert _get(world, admin)["insider"] is True
    assert _get(world, analyst)["insider"] is False


def test_bad_bodies_get_problems(world: World) -> None:
    account = world.account("alpha", Role.ANALYST)
    for body in ({"insider": "yes"}, {"insider": 1}, {}, [True]):
        with world.client() as client:
            response = client.put(URL, headers=bearer(account), json=body)
        assert problem_slug(response, 422)


def test_the_operator_plane_has_no_such_route(world: World) -> None:
    with world.client(operator=True) as client:
        assert client.get(URL).status_code == 404


def test_a_login_is_recorded_under_a_pseudonym(world: World) -> None:
    account = world.add_user("bravo", Role.VIEWER)
    with world.client() as client:
        login(client, account)
    [event] = _events_of(world, account)
    assert event.feature == "login"
    assert event.user_id is None
    assert account.user_id not in event.subject


def test_the_export_names_only_insiders_and_holds_no_personal_data(
    world: World, tmp_path: Path
) -> None:
    outsider = world.add_user("alpha", Role.ANALYST)
    insider = world.add_user("alpha", Role.ANALYST)
    for account in (outsider, insider):
        with world.client() as client:
            login(client, account)
    assert _put_in_session(world, insider, {"insider": True}).status_code == 200
    with world.client() as client:
        login(client, insider)  # recorded under the user id now
    home = world.deployment.settings.home
    after = world.last_seq()
    out = tmp_path / "usage.jsonl"
    result = run_cli("telemetry", "export", "-o", out, "--home", home)
    assert "usage events" in result.stderr
    assert_ok(result)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    text = out.read_text(encoding="utf-8")
    lines = [json.loads(line) for line in text.splitlines()]
    assert {line["feature"] for line in lines} == {"login"}
    # The canaries: no email of anyone, no id of anyone who has not opted in, no tenant.
    for account in world.accounts.values():
        assert account.email not in text
        assert account.user_id not in text
    for canary in (outsider.email, outsider.user_id, outsider.tenant_id, "alpha.example",
                   "bravo", "198.51."):
        assert canary not in text
    assert [line["user"] for line in lines if line["insider"]] == [insider.user_id]
    [exported] = world.audit_events("operator:telemetry:export", after)
    assert exported.actor_kind == "operator"
    as_csv = assert_ok(run_cli("telemetry", "export", "--format", "csv", "--home", home))
    rows = list(csv.DictReader(io.StringIO(as_csv)))
    assert len(rows) == len(lines)
    assert outsider.user_id not in as_csv
    summary = assert_ok(run_cli("telemetry", "show", "--home", home))
    assert "insiders now: " in summary
    assert "login" in summary
    if not world.deployment.settings.database_url:
        # SQLite: no email of any user anywhere in the home, database files included.
        assert scan(home, [a.email.encode() for a in (outsider, insider)]) == []


def test_a_bad_since_is_one_clean_line(world: World) -> None:
    home = world.deployment.settings.home
    assert_clean_failure(run_cli("telemetry", "export", "--since", "last week", "--home", home),
                         "--since must be a date")


def test_purge_deletes_events_past_retention_and_is_audited(world: World) -> None:
    account = world.add_user("bravo", Role.ANALYST)
    with world.client() as client:
        login(client, account)
    [event] = _events_of(world, account)
    with world.deployment.transaction() as session:
        session.execute(sa.update(UsageEvent).where(UsageEvent.id == event.id).values(
            occurred_at=event.occurred_at - dt.timedelta(days=401)))
    home = world.deployment.settings.home
    after = world.last_seq()
    dry = assert_ok(run_cli("telemetry", "purge", "--dry-run", "--home", home))
    assert dry.startswith("would delete 1 usage events")
    assert len(_events_of(world, account)) == 1
    purged_out = assert_ok(run_cli("telemetry", "purge", "--home", home))
    assert purged_out.startswith("deleted 1 usage events")
    assert _events_of(world, account) == []
    [purged] = world.audit_events("operator:telemetry:purge", after)
    assert json.loads(purged.details) == {"events": 1, "retention_days": 400}

