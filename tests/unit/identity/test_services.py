"""Account services: users (emails sealed, looked up by HMAC), one answer for every
wrong login, disabling, tenant policy, and operators (always with MFA)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pyotp
import pytest
import sqlalchemy as sa

from strongroom.deployment import Deployment
from strongroom.errors import InvalidInput
from strongroom.identity import services as identity
from strongroom.identity import sessions
from strongroom.identity.errors import AccountExists, BadCredentials, MfaRequired, UserNotFound
from strongroom.identity.models import Plane, Role, User
from strongroom.identity.passwords import WeakPassword
from strongroom.tenancy.models import Tenant

PASSWORD = "violet kettle orbit lantern 42"


@pytest.fixture
def acme(make_tenant: Callable[[str], Tenant]) -> Tenant:
    return make_tenant("acme")


def add(deployment: Deployment, tenant: Tenant, email: str, role: Role = Role.VIEWER) -> User:
    with deployment.transaction() as session:
        return identity.create_user(session, deployment.keys, tenant, email, role, PASSWORD)


def authenticate(deployment: Deployment, tenant: Tenant | None, email: str, password: str,
                 code: str | None = None) -> User:
    with deployment.transaction() as session:
        return identity.authenticate_user(session, deployment.keys, tenant, email, password, code)


def test_emails_are_sealed_and_looked_up_case_insensitively(
    deployment: Deployment, acme: Tenant
) -> None:
    user = add(deployment, acme, "Jane.Doe@Example.ORG")
    with deployment.transaction() as session:
        raw = session.execute(sa.select(User.__table__)).all()
        assert "jane.doe" not in str(raw).lower()
        assert identity.user_email(deployment.keys, session, user) == "jane.doe@example.org"
    assert authenticate(deployment, acme, " JANE.DOE@example.org ", PASSWORD).id == user.id


def test_an_email_is_unique_within_a_tenant_only(
    deployment: Deployment, acme: Tenant, make_tenant: Callable[[str], Tenant]
) -> None:
    add(deployment, acme, "sam@example.org")
    with pytest.raises(AccountExists):
        add(deployment, acme, "SAM@example.org")
    add(deployment, make_tenant("other"), "sam@example.org")


@pytest.mark.parametrize("email", ["no-at-sign", "a@b", "two@@example.org", "a b@example.org",
                                   "x" * 65 + "@example.org", "a@b.c\x00", ""])
def test_malformed_emails_are_refused(deployment: Deployment, acme: Tenant, email: str) -> None:
    with pytest.raises(InvalidInput, match="email"):
        add(deployment, acme, email)


def test_a_new_users_password_is_checked_against_the_tenant_and_email(
    deployment: Deployment, acme: Tenant
) -> None:
    with deployment.transaction() as session, pytest.raises(WeakPassword) as refused:
        identity.create_user(session, deployment.keys, acme, "jane@example.org", Role.VIEWER,
                             "jane walks her dog every day")
    assert refused.value.reason == "context"


def test_every_wrong_part_of_a_login_is_the_same_error(
    deployment: Deployment, acme: Tenant, make_tenant: Callable[[str], Tenant]
) -> None:
    add(deployment, acme, "jane@example.org")
    other = make_tenant("other")
    attempts = [
        (acme, "jane@example.org", "wrong password here"),
        (acme, "nobody@example.org", PASSWORD),
        (None, "jane@example.org", PASSWORD),
        (other, "jane@example.org", PASSWORD),
        (acme, "not an email", PASSWORD),
    ]
    messages = set()
    for tenant, email, password in attempts:
        with pytest.raises(BadCredentials) as refused:
            authenticate(deployment, tenant, email, password)
        messages.add((type(refused.value), refused.value.detail))
    assert len(messages) == 1


def test_a_disabled_user_cannot_log_in_and_loses_every_session(
    deployment: Deployment, acme: Tenant
) -> None:
    user = add(deployment, acme, "leaver@example.org")
    policy = sessions.SessionPolicy()
    with deployment.transaction() as session:
        tokens = [sessions.new_session(session, Plane.TENANT, user.id, acme.id, policy)[0]
                  for _ in range(2)]
    with deployment.transaction() as session:
        found = identity.get_user(session, acme.id, user.id)
        assert identity.set_disabled(session, found, True) == 2
    with deployment.transaction() as session:
        assert all(sessions.resolve(session, t, Plane.TENANT, policy) is None for t in tokens)
    with pytest.raises(BadCredentials):
        authenticate(deployment, acme, "leaver@example.org", PASSWORD)


def test_get_user_never_crosses_tenants(
    deployment: Deployment, acme: Tenant, make_tenant: Callable[[str], Tenant]
) -> None:
    user = add(deployment, acme, "jane@example.org")
    other = make_tenant("other")
    with deployment.transaction() as session:
        assert identity.get_user(session, acme.id, user.id).id == user.id
        for tenant_id, user_id in ((other.id, user.id), (acme.id, "0" * 32), (acme.id, "x"),
                                   (acme.id, user.id.upper()), (acme.id, user.id + "\x00")):
            with pytest.raises(UserNotFound):
                identity.get_user(session, tenant_id, user_id)


def test_totp_codes_are_single_use_at_login(deployment: Deployment, acme: Tenant) -> None:
    user = add(deployment, acme, "mfa@example.org")
    with deployment.transaction() as session:
        found = identity.get_user(session, acme.id, user.id)
        secret = identity.begin_mfa_enrolment(session, deployment.keys, found)["secret"]
        codes = identity.confirm_mfa_enrolment(session, deployment.keys, found,
                                               pyotp.TOTP(secret).now())
    assert len(codes) == 10
    with pytest.raises(MfaRequired):
        authenticate(deployment, acme, "mfa@example.org", PASSWORD)
    next_code = pyotp.TOTP(secret).at(time.time() + 30)  # the next step: inside the window
    authenticate(deployment, acme, "mfa@example.org", PASSWORD, next_code)
    with pytest.raises(BadCredentials):
        authenticate(deployment, acme, "mfa@example.org", PASSWORD, next_code)
    authenticate(deployment, acme, "mfa@example.org", PASSWORD, codes[3])
    with pytest.raises(BadCredentials):
        authenticate(deployment, acme, "mfa@example.org", PASSWORD, codes[3])


@pytest.mark.parametrize(("entries", "stored"), [
    (["10.0.0.0/8", "10.0.0.0/8", " 2001:db8::/32 "], ["10.0.0.0/8", "2001:db8::/32"]),
    ([], []),
])
def test_allow_lists_are_normalised(
    deployment: Deployment, acme: Tenant, entries: list[str], stored: list[str]
) -> None:
    with deployment.transaction() as session:
        policy = identity.tenant_policy(session, acme.id)
        identity.set_tenant_policy(policy, None, entries)
        assert [str(n) for n in identity.allowlist_networks(policy)] == stored


def test_an_allow_list_too_long_or_with_a_bad_entry_changes_nothing(
    deployment: Deployment, acme: Tenant
) -> None:
    with deployment.transaction() as session:
        policy = identity.tenant_policy(session, acme.id)
        identity.set_tenant_policy(policy, None, ["192.0.2.0/24"])
        with pytest.raises(InvalidInput, match="at most 100"):
            identity.set_tenant_policy(policy, None, [f"10.0.{i}.0/24" for i in range(101)])
        with pytest.raises(InvalidInput, match="CIDR"):
            identity.set_tenant_policy(policy, None, ["192.0.2.0/24", "192.0.2.1/24"])
        assert [str(n) for n in identity.allowlist_networks(policy)] == ["192.0.2.0/24"]


@pytest.mark.parametrize("name", ["Ops", "o", "ops\n", "ops!", "x" * 41, "1ops", ""])
def test_operator_names_are_strict(deployment: Deployment, name: str) -> None:
    with deployment.transaction() as session, pytest.raises(InvalidInput, match="operator name"):
        identity.create_operator(session, deployment.keys, name, PASSWORD)


def test_operators_always_need_a_code(deployment: Deployment) -> None:
    with deployment.transaction() as session:
        _made, enrolment, codes = identity.create_operator(session, deployment.keys, "ops",
                                                           PASSWORD)
    assert enrolment["otpauth_uri"].startswith("otpauth://totp/")
    for code in (None, ""):
        with deployment.transaction() as session, pytest.raises(MfaRequired):
            identity.authenticate_operator(session, deployment.keys, "ops", PASSWORD, code)
    with deployment.transaction() as session, pytest.raises(BadCredentials):
        identity.authenticate_operator(session, deployment.keys, "ops", "wrong", codes[0])
    with deployment.transaction() as session:
        made = identity.authenticate_operator(session, deployment.keys, "ops", PASSWORD,
                                              pyotp.TOTP(enrolment["secret"]).now())
        assert made.name == "ops"
    with deployment.transaction() as session, pytest.raises(AccountExists):
        identity.create_operator(session, deployment.keys, "ops", PASSWORD)
