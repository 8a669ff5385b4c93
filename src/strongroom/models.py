"""Every model, imported once so Alembic and tests see the whole schema."""

from strongroom.audit.models import AuditCheckpoint, AuditEvent, AuditHead, AuditPurge
from strongroom.crypto.models import DeploymentRecord, KeysetRecord
from strongroom.db import Base
from strongroom.identity.models import (
    ApiToken,
    AuthSession,
    LoginThrottle,
    Operator,
    RecoveryCode,
    TenantPolicy,
    User,
)
from strongroom.storage.models import StoredObject
from strongroom.tenancy.models import Tenant

__all__ = [
    "AuditCheckpoint", "AuditEvent", "AuditHead", "AuditPurge", "Base", "DeploymentRecord",
    "ApiToken", "AuthSession", "KeysetRecord", "LoginThrottle", "Operator", "RecoveryCode",
    "StoredObject", "Tenant", "TenantPolicy", "User",
]
