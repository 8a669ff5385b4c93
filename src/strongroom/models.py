"""Every model, imported once so Alembic and tests see the whole schema."""

from strongroom.analysis.models import SavedSelection, SavedSelectionVersion
from strongroom.audit.models import AuditCheckpoint, AuditEvent, AuditHead, AuditPurge
from strongroom.backup.models import BackupDrill
from strongroom.crypto.models import DeploymentRecord, KeysetRecord
from strongroom.datasets.models import Dataset, DatasetVersion, Upload, UploadPart
from strongroom.db import Base
from strongroom.exports.models import (
    Export,
    ExportCap,
    ExportLimit,
    ExportQuotaState,
    ExportRefusal,
    ExportUsage,
)
from strongroom.identity.models import (
    ApiToken,
    AuthSession,
    LoginThrottle,
    Operator,
    RecoveryCode,
    TenantPolicy,
    User,
)
from strongroom.privacy.models import PseudonymKeyRecord
from strongroom.storage.models import StoredObject
from strongroom.telemetry.models import InsiderConsent, UsageEvent
from strongroom.tenancy.deletion import TenantDeletion
from strongroom.tenancy.limits import TenantLimits
from strongroom.tenancy.models import Tenant

__all__ = [
    "ApiToken", "AuditCheckpoint", "AuditEvent", "AuditHead", "AuditPurge", "AuthSession",
    "BackupDrill", "Base", "Dataset", "DatasetVersion", "DeploymentRecord", "Export", "ExportCap",
    "ExportLimit", "ExportQuotaState", "ExportRefusal", "ExportUsage",
    "InsiderConsent", "KeysetRecord",
    "LoginThrottle", "Operator", "PseudonymKeyRecord", "RecoveryCode",
    "SavedSelection", "SavedSelectionVersion", "StoredObject", "Tenant",
    "TenantDeletion", "TenantLimits", "TenantPolicy", "Upload", "UploadPart", "UsageEvent", "User",
]
