"""The demo deployment made by ``init --demo`` (and so by ``make run``).

It gets a tenant called demo and one admin with a freshly generated passphrase,
written to HOME/demo-login.txt (mode 0600) so ``make run`` can show it again.
Refused in production: a production deployment has no accounts until an
operator makes them.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from strongroom.audit import EventTag
from strongroom.cli._audited import record
from strongroom.deployment import Deployment
from strongroom.identity import services as identity
from strongroom.identity.models import Role
from strongroom.tenancy.services import create_tenant

DEMO_EMAIL = "admin@demo.example"
LOGIN_FILE = "demo-login.txt"


def create_demo(dep: Deployment, home: Path) -> Path:
    """Create tenant demo and its admin; return the file holding the login."""
    # Hex cannot spell a context word such as "demo", so the policy never refuses it.
    password = "-".join(secrets.token_hex(4) for _ in range(4))
    with dep.transaction() as session:
        tenant = create_tenant(session, dep.keys, "demo", "Demo tenant")
        record(dep, session, EventTag.TENANT_CREATE, tenant=tenant.id, target=f"tenant:{tenant.id}")
        user = identity.create_user(session, dep.keys, tenant, DEMO_EMAIL, Role.ADMIN, password)
        record(dep, session, EventTag.USER_CREATE_CLI, tenant=tenant.id, target=f"user:{user.id}",
               details={"role": user.role})
    path = home / LOGIN_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(f"tenant:   demo\nemail:    {DEMO_EMAIL}\npassword: {password}\n")
    return path
