"""Accounts: tenant users and operators, login with throttling and MFA, factors, policy.

Services take the caller's session and explicit context. They raise our errors
and return what the edge needs; the edge records the audit events, in the same
transaction, because only it knows the actor's address and session.
"""

from __future__ import annotations

import dataclasses
import json
import re
import unicodedata
import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from strongroom.crypto.keyring import TenantKeyRing
from strongroom.crypto.keystore import KeyStore
from strongroom.crypto.macs import MacKey
from strongroom.db import utcnow
from strongroom.errors import InvalidInput
from strongroom.firewall.addresses import Network, parse_cidr
from strongroom.identity import mfa, passwords, sessions, throttle
from strongroom.identity.errors import (
    AccountExists,
    BadCredentials,
    MfaRequired,
    ReauthenticationRequired,
    UserNotFound,
)
from strongroom.identity.models import (
    ApiToken,
    Operator,
    RecoveryCode,
    Role,
    TenantPolicy,
    User,
)
from strongroom.tenancy.models import Tenant

EMAIL_MAX = 254
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
_OPERATOR_NAME = re.compile(r"^[a-z][a-z0-9_-]{1,39}$")
_LOOKUP_DOMAIN = "user-email"
_ACCOUNT_DOMAIN = "login-account"
_ADDRESS_DOMAIN = "login-address"
ALLOWLIST_MAX = 100


def normalise_email(email: str) -> str:
    """NFKC, trimmed and case-folded; refuse anything that is not shaped like an address."""
    clean = unicodedata.normalize("NFKC", email).strip().casefold()
    if len(clean) > EMAIL_MAX or not clean.isprintable() or not _EMAIL.fullmatch(clean):
        raise InvalidInput("email must be an address like name@example.org")
    return clean


def _email_context(ring: TenantKeyRing, user_id: str) -> bytes:
    return f"strongroom/user-email/{ring.environment.value}/{ring.tenant_id}/{user_id}".encode()


def _mfa_context(ring: TenantKeyRing, user_id: str) -> bytes:
    return f"strongroom/user-mfa/{ring.environment.value}/{ring.tenant_id}/{user_id}".encode()


def password_context(tenant: Tenant, email: str | None = None) -> list[str]:
    words = [tenant.slug, tenant.name, "strongroom"]
    if email:
        local, _, domain = email.partition("@")
        words += [local, domain.split(".")[0]]
    return words


# -- users ----------------------------------------------------------------------------------


def create_user(
    session: Session, keys: KeyStore, tenant: Tenant, email: str, role: Role, password: str
) -> User:
    """A new user of ``tenant``. New users have no MFA yet, so the single-factor length applies."""
    clean = normalise_email(email)
    checked = passwords.check_password(
        password, has_mfa=False, context=password_context(tenant, clean)
    )
    lookup = keys.identity_key(session).mac(_LOOKUP_DOMAIN, clean.encode())
    exists = session.scalar(
        sa.select(User.id).where(User.tenant_id == tenant.id, User.email_lookup == lookup)
    )
    if exists is not None:
        raise AccountExists("a user with this email already exists in this tenant")
    ring = keys.tenant_ring(session, tenant.id)
    user_id = uuid.uuid4().hex
    user = User(
        id=user_id,
        tenant_id=tenant.id,
        email_lookup=lookup,
        email_sealed=ring.encrypt(clean.encode(), _email_context(ring, user_id)),
        role=role.value,
        password_hash=passwords.hash_password(checked),
    )
    session.add(user)
    session.flush()
    return user


def user_email(keys: KeyStore, session: Session, user: User) -> str:
    ring = keys.tenant_ring(session, user.tenant_id)
    return ring.decrypt(user.email_sealed, _email_context(ring, user.id)).decode()


def get_user(session: Session, tenant_id: str, user_id: str) -> User:
    """The tenant's user; another tenant's user is simply not found."""
    user = session.get(User, user_id) if re.fullmatch(r"[0-9a-f]{32}", user_id) else None
    if user is None or user.tenant_id != tenant_id:
        raise UserNotFound("no such user")
    return user


def list_users(session: Session, tenant_id: str) -> list[User]:
    stmt = sa.select(User).where(User.tenant_id == tenant_id).order_by(User.created_at, User.id)
    return list(session.scalars(stmt))


def set_disabled(session: Session, user: User, disabled: bool) -> int:
    """Disable or enable a user; disabling ends every session and revokes every token at once,
    so enabling the user again does not bring old credentials back."""
    user.disabled = disabled
    if not disabled:
        return 0
    session.execute(
        sa.update(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return sessions.end_all(session, user.id)


# -- login ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LoginKeys:
    account: str
    address: str


def login_keys(mac: MacKey, scope: str, account: str, address: str) -> LoginKeys:
    return LoginKeys(
        account="acct:" + mac.mac(_ACCOUNT_DOMAIN, f"{scope}\x00{account}".encode())[:64],
        address="addr:" + mac.mac(_ADDRESS_DOMAIN, address.encode())[:64],
    )


def check_throttle(session: Session, keys: LoginKeys) -> None:
    throttle.check(session, [keys.account, keys.address])


def record_login_failure(session: Session, keys: LoginKeys) -> throttle.FailureCount:
    return throttle.record_failure(
        session, {keys.account: throttle.ACCOUNT, keys.address: throttle.ADDRESS}
    )


def _check_second_factor(
    session: Session, owner_id: str, secret: str, last_step: int | None, code: str | None
) -> int | None:
    """Return the TOTP step to store, or None if a recovery code was used; raise when wrong."""
    if not code:
        raise MfaRequired("enter the one-time code from your authenticator app")
    step = mfa.verify_totp(secret, code, last_step)
    if step is not None:
        return step
    stored = session.scalars(
        sa.select(RecoveryCode).where(
            RecoveryCode.owner_id == owner_id, RecoveryCode.used_at.is_(None)
        )
    ).all()
    matched = mfa.match_recovery_code(code, [r.code_hash for r in stored])
    if matched is None:
        raise BadCredentials("the login details are not correct")
    for record in stored:
        if record.code_hash == matched:
            record.used_at = utcnow()
    return last_step


def authenticate_user(
    session: Session,
    keys: KeyStore,
    tenant: Tenant | None,
    email: str,
    password: str,
    code: str | None,
) -> User:
    """The user for these credentials, or BadCredentials; the same answer for every wrong part.

    Unknown tenants and users still cost one Argon2id verification, so timing does
    not tell them apart from a wrong password.
    """
    try:
        clean = normalise_email(email)
    except InvalidInput:
        clean = ""
    user = None
    if tenant is not None and clean:
        lookup = keys.identity_key(session).mac(_LOOKUP_DOMAIN, clean.encode())
        user = session.scalar(
            sa.select(User).where(User.tenant_id == tenant.id, User.email_lookup == lookup)
        )
    if user is None:
        passwords.burn_time(password)
        raise BadCredentials("the login details are not correct")
    if not passwords.verify_password(user.password_hash, password) or user.disabled:
        raise BadCredentials("the login details are not correct")
    if user.mfa_enabled and user.mfa_secret_sealed is not None:
        ring = keys.tenant_ring(session, user.tenant_id)
        secret = ring.decrypt(user.mfa_secret_sealed, _mfa_context(ring, user.id)).decode()
        user.mfa_last_step = _check_second_factor(
            session, user.id, secret, user.mfa_last_step, code
        )
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(unicodedata.normalize("NFKC", password))
    return user


def confirm_password(user_or_operator: User | Operator, password: str) -> None:
    """Re-authentication before changing a factor or the email."""
    if not passwords.verify_password(user_or_operator.password_hash, password):
        raise ReauthenticationRequired("the current password is not correct")


# -- user factors -----------------------------------------------------------------------------


def change_password(
    session: Session, tenant: Tenant, keys: KeyStore, user: User, new_password: str
) -> None:
    checked = passwords.check_password(
        new_password, has_mfa=user.mfa_enabled,
        context=password_context(tenant, user_email(keys, session, user)),
    )
    user.password_hash = passwords.hash_password(checked)
    user.password_changed_at = utcnow()


def begin_mfa_enrolment(session: Session, keys: KeyStore, user: User) -> dict[str, str]:
    """Store a new (not yet active) TOTP secret; return what the user's app needs."""
    ring = keys.tenant_ring(session, user.tenant_id)
    secret = mfa.new_totp_secret()
    user.mfa_secret_sealed = ring.encrypt(secret.encode(), _mfa_context(ring, user.id))
    user.mfa_enabled = False
    user.mfa_last_step = None
    uri = mfa.provisioning_uri(secret, f"{user.id[:8]}")
    return {"secret": secret, "otpauth_uri": uri, "qr_svg": mfa.qr_svg(uri)}


def confirm_mfa_enrolment(session: Session, keys: KeyStore, user: User, code: str) -> list[str]:
    """Activate MFA once a code from the new secret works; return fresh recovery codes."""
    if user.mfa_secret_sealed is None:
        raise InvalidInput("start MFA enrolment first")
    ring = keys.tenant_ring(session, user.tenant_id)
    secret = ring.decrypt(user.mfa_secret_sealed, _mfa_context(ring, user.id)).decode()
    step = mfa.verify_totp(secret, code, user.mfa_last_step)
    if step is None:
        raise InvalidInput("the one-time code is not correct or was already used")
    user.mfa_enabled = True
    user.mfa_last_step = step
    return replace_recovery_codes(session, user.id)


def replace_recovery_codes(session: Session, owner_id: str) -> list[str]:
    session.execute(sa.delete(RecoveryCode).where(RecoveryCode.owner_id == owner_id))
    codes = mfa.new_recovery_codes()
    session.add_all(RecoveryCode(owner_id=owner_id, code_hash=mfa.hash_recovery_code(c))
                    for c in codes)
    return codes


def disable_mfa(session: Session, policy: TenantPolicy, user: User, password: str) -> None:
    """Turn MFA off after re-authentication, if the password is long enough to stand alone."""
    if policy.require_mfa:
        raise InvalidInput("this tenant requires MFA for every user")
    confirm_password(user, password)
    if len(unicodedata.normalize("NFKC", password)) < passwords.MIN_LENGTH_SINGLE_FACTOR:
        raise InvalidInput(
            f"a password used alone must have at least {passwords.MIN_LENGTH_SINGLE_FACTOR} "
            "characters; change your password before turning MFA off"
        )
    user.mfa_enabled = False
    user.mfa_secret_sealed = None
    user.mfa_last_step = None
    session.execute(sa.delete(RecoveryCode).where(RecoveryCode.owner_id == user.id))


def change_email(session: Session, keys: KeyStore, tenant: Tenant, user: User, email: str) -> None:
    clean = normalise_email(email)
    lookup = keys.identity_key(session).mac(_LOOKUP_DOMAIN, clean.encode())
    taken = session.scalar(
        sa.select(User.id).where(
            User.tenant_id == tenant.id, User.email_lookup == lookup, User.id != user.id
        )
    )
    if taken is not None:
        raise AccountExists("a user with this email already exists in this tenant")
    ring = keys.tenant_ring(session, tenant.id)
    user.email_lookup = lookup
    user.email_sealed = ring.encrypt(clean.encode(), _email_context(ring, user.id))


# -- tenant policy ----------------------------------------------------------------------------


def tenant_policy(session: Session, tenant_id: str) -> TenantPolicy:
    policy = session.get(TenantPolicy, tenant_id)
    if policy is None:
        policy = TenantPolicy(tenant_id=tenant_id, require_mfa=False, allowlist="[]")
        session.add(policy)
        session.flush()
    return policy


def allowlist_networks(policy: TenantPolicy) -> list[Network]:
    return [parse_cidr(entry) for entry in json.loads(policy.allowlist)]


def set_tenant_policy(
    policy: TenantPolicy, require_mfa: bool | None, allowlist: Sequence[str] | None
) -> None:
    if require_mfa is not None:
        policy.require_mfa = require_mfa
    if allowlist is not None:
        if len(allowlist) > ALLOWLIST_MAX:
            raise InvalidInput(f"an allow-list holds at most {ALLOWLIST_MAX} networks")
        networks = [str(parse_cidr(entry)) for entry in allowlist]
        policy.allowlist = json.dumps(sorted(set(networks)))
    policy.updated_at = utcnow()


# -- operators ------------------------------------------------------------------------------


_OPERATOR_MFA = "operator-mfa"


def create_operator(
    session: Session, keys: KeyStore, name: str, password: str
) -> tuple[Operator, dict[str, str], list[str]]:
    """An operator account with MFA from the start: returns the enrolment and recovery codes."""
    if not _OPERATOR_NAME.fullmatch(name):
        raise InvalidInput("operator name must be 2-40 lower-case letters, digits, - or _")
    if session.scalar(sa.select(Operator.id).where(Operator.name == name)) is not None:
        raise AccountExists(f"an operator named {name} already exists")
    checked = passwords.check_password(password, has_mfa=True, context=[name, "strongroom"])
    secret = mfa.new_totp_secret()
    operator = Operator(
        id=uuid.uuid4().hex,
        name=name,
        password_hash=passwords.hash_password(checked),
        mfa_secret_sealed=keys.seal(secret.encode(), f"{_OPERATOR_MFA}/{name}"),
    )
    session.add(operator)
    session.flush()
    uri = mfa.provisioning_uri(secret, f"operator {name}")
    codes = replace_recovery_codes(session, operator.id)
    return operator, {"secret": secret, "otpauth_uri": uri}, codes


def authenticate_operator(
    session: Session, keys: KeyStore, name: str, password: str, code: str | None
) -> Operator:
    """The operator for these credentials. A code is always required, so a login without
    one is refused before the password is looked at: the answer says nothing about it."""
    if not code:
        passwords.burn_time(password)
        raise MfaRequired("operators always log in with a one-time code as well")
    operator = None
    if _OPERATOR_NAME.fullmatch(name):  # never send a malformed name (NUL, say) to the database
        operator = session.scalar(sa.select(Operator).where(Operator.name == name))
    if operator is None:
        passwords.burn_time(password)
        raise BadCredentials("the login details are not correct")
    if not passwords.verify_password(operator.password_hash, password) or operator.disabled:
        raise BadCredentials("the login details are not correct")
    secret = keys.unseal(operator.mfa_secret_sealed, f"{_OPERATOR_MFA}/{operator.name}").decode()
    operator.mfa_last_step = _check_second_factor(
        session, operator.id, secret, operator.mfa_last_step, code
    )
    if passwords.needs_rehash(operator.password_hash):
        operator.password_hash = passwords.hash_password(unicodedata.normalize("NFKC", password))
    return operator
