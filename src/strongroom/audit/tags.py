"""The one vocabulary of audit events: ``source:subject:action``.

Every tag belongs to exactly one event class, which decides its retention.
Adding a tag without a class fails the tests, not production.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    SUCCESS = "success"
    DENIED = "denied"
    FAILURE = "failure"


class EventClass(StrEnum):
    SECURITY = "security"
    ADMINISTRATION = "administration"
    ROUTINE = "routine"


class EventTag(StrEnum):
    # The deployment and its operators
    DEPLOYMENT_INIT = "operator:deployment:init"
    SERVER_START = "operator:server:start"
    SERVER_STOP = "operator:server:stop"
    CONFIG_CHANGE = "operator:config:change"
    TENANT_CREATE = "operator:tenant:create"
    TENANT_SUSPEND = "operator:tenant:suspend"
    TENANT_RESUME = "operator:tenant:resume"
    KEYS_ROTATE = "operator:keys:rotate"
    KEYS_REWRAP = "operator:keys:rewrap"
    AUDIT_CHECKPOINT = "operator:audit:checkpoint"
    AUDIT_EXPORT = "operator:audit:export"
    AUDIT_PURGE = "operator:audit:purge"
    AUDIT_READ = "operator:audit:read"
    # Tenant users
    SESSION_LOGIN = "user:session:login"
    SESSION_LOGIN_FAILED = "user:session:login-failed"
    SESSION_LOGOUT = "user:session:logout"
    TENANT_AUDIT_READ = "user:audit:read"
    ACCESS_DENIED = "user:access:denied"
    SESSION_LOGOUT_ALL = "user:session:logout-everywhere"
    USER_CREATE = "user:user:create"
    USER_UPDATE = "user:user:update"
    USER_DISABLE = "user:user:disable"
    PASSWORD_CHANGE = "user:password:change"  # noqa: S105 (an event name, not a secret)  # nosec B105
    EMAIL_CHANGE = "user:email:change"
    MFA_ENROL = "user:mfa:enrol"
    MFA_DISABLE = "user:mfa:disable"
    MFA_RECOVERY_USED = "user:mfa:recovery-used"
    TOKEN_CREATE = "user:token:create"  # noqa: S105 (an event name, not a secret)  # nosec B105
    TOKEN_REVOKE = "user:token:revoke"  # noqa: S105 (an event name, not a secret)  # nosec B105
    POLICY_CHANGE = "user:policy:change"
    OPERATOR_CREATE = "operator:operator:create"
    OPERATOR_LOGIN = "operator:session:login"
    OPERATOR_LOGIN_FAILED = "operator:session:login-failed"
    OPERATOR_LOGOUT = "operator:session:logout"
    USER_CREATE_CLI = "operator:user:create"
    DATASET_UPLOAD = "user:dataset:upload"
    DATASET_BUILD = "user:dataset:build"
    DATASET_READ = "user:dataset:read"
    DATASET_UPLOAD_PART = "user:dataset:upload-part"
    DATASET_UPLOAD_COMPLETE = "user:dataset:upload-complete"
    DATASET_UPLOAD_ABORT = "user:dataset:upload-abort"
    DATASET_CREATE = "user:dataset:create"
    DATASET_DELETE = "user:dataset:delete"
    DATASET_RESTORE = "user:dataset:restore"
    DATASET_PURGE = "system:dataset:purge"
    DATASET_LOCK = "user:dataset:lock"
    DATASET_UNLOCK = "user:dataset:unlock"
    DATASET_BUILD_FINISH = "user:dataset:build-finish"
    DATASET_BUILD_CANCEL = "user:dataset:build-cancel"
    DATASET_BUILD_INTERRUPTED = "system:dataset:build-interrupted"
    DATASET_UPLOAD_ABANDON = "system:dataset:upload-abandon"
    DATASET_MAINTENANCE = "system:dataset:maintenance"
    ANALYSIS_COUNT = "user:analysis:count"
    ANALYSIS_CUBE = "user:analysis:cube"
    ANALYSIS_PREVIEW = "user:analysis:preview"
    ANALYSIS_SQL = "user:analysis:sql"
    SELECTION_CREATE = "user:selection:create"
    SELECTION_UPDATE = "user:selection:update"
    SELECTION_DELETE = "user:selection:delete"
    EXPORT_CREATE = "user:export:create"
    EXPORT_DOWNLOAD = "user:export:download"
    EXPORT_LIMITS_CHANGE = "user:export:limits-change"
    EXPORT_CAPS_CHANGE = "operator:tenant:export-caps"
    EXPORT_PURGE = "system:export:purge"
    PRIVACY_KEY_CREATE = "system:privacy-key:create"
    PRIVACY_KEY_ROTATE = "user:privacy-key:rotate"
    PRIVACY_TOKEN_REVERSE = "user:privacy-token:reverse"  # noqa: S105 (an event name)  # nosec B105
    BACKUP_RUN = "operator:backup:run"
    BACKUP_VERIFY = "operator:backup:verify"
    BACKUP_DRILL = "operator:backup:drill"
    BACKUP_PRUNE = "operator:backup:prune"
    BACKUP_HOLD = "operator:backup:hold"
    BACKUP_RELEASE = "operator:backup:release"
    BACKUP_RESTORE = "operator:backup:restore"
    TENANT_DELETE = "operator:tenant:delete"
    TENANT_UNDELETE = "operator:tenant:undelete"
    TENANT_PURGE = "operator:tenant:purge"
    TENANT_LIMITS = "operator:tenant:limits"
    TELEMETRY_INSIDER_JOIN = "user:telemetry:insider-join"
    TELEMETRY_INSIDER_LEAVE = "user:telemetry:insider-leave"
    TELEMETRY_EXPORT = "operator:telemetry:export"
    TELEMETRY_PURGE = "operator:telemetry:purge"
    TENANT_CLONE_OUT = "operator:tenant:clone-out"
    TENANT_CLONE_IN = "operator:tenant:clone-in"
    # The system itself
    ALERT_RAISE = "system:alert:raise"


TAG_CLASS: dict[EventTag, EventClass] = {
    EventTag.DEPLOYMENT_INIT: EventClass.ADMINISTRATION,
    EventTag.SERVER_START: EventClass.ADMINISTRATION,
    EventTag.SERVER_STOP: EventClass.ADMINISTRATION,
    EventTag.CONFIG_CHANGE: EventClass.ADMINISTRATION,
    EventTag.TENANT_CREATE: EventClass.ADMINISTRATION,
    EventTag.TENANT_SUSPEND: EventClass.ADMINISTRATION,
    EventTag.TENANT_RESUME: EventClass.ADMINISTRATION,
    EventTag.KEYS_ROTATE: EventClass.SECURITY,
    EventTag.KEYS_REWRAP: EventClass.SECURITY,
    EventTag.AUDIT_CHECKPOINT: EventClass.SECURITY,
    EventTag.AUDIT_EXPORT: EventClass.SECURITY,
    EventTag.AUDIT_PURGE: EventClass.SECURITY,
    EventTag.AUDIT_READ: EventClass.ROUTINE,
    EventTag.SESSION_LOGIN: EventClass.SECURITY,
    EventTag.SESSION_LOGIN_FAILED: EventClass.SECURITY,
    EventTag.SESSION_LOGOUT: EventClass.SECURITY,
    EventTag.TENANT_AUDIT_READ: EventClass.ROUTINE,
    EventTag.ACCESS_DENIED: EventClass.SECURITY,
    EventTag.SESSION_LOGOUT_ALL: EventClass.SECURITY,
    EventTag.USER_CREATE: EventClass.SECURITY,
    EventTag.USER_UPDATE: EventClass.SECURITY,
    EventTag.USER_DISABLE: EventClass.SECURITY,
    EventTag.PASSWORD_CHANGE: EventClass.SECURITY,
    EventTag.EMAIL_CHANGE: EventClass.SECURITY,
    EventTag.MFA_ENROL: EventClass.SECURITY,
    EventTag.MFA_DISABLE: EventClass.SECURITY,
    EventTag.MFA_RECOVERY_USED: EventClass.SECURITY,
    EventTag.TOKEN_CREATE: EventClass.SECURITY,
    EventTag.TOKEN_REVOKE: EventClass.SECURITY,
    EventTag.POLICY_CHANGE: EventClass.SECURITY,
    EventTag.OPERATOR_CREATE: EventClass.SECURITY,
    EventTag.OPERATOR_LOGIN: EventClass.SECURITY,
    EventTag.OPERATOR_LOGIN_FAILED: EventClass.SECURITY,
    EventTag.OPERATOR_LOGOUT: EventClass.SECURITY,
    EventTag.USER_CREATE_CLI: EventClass.SECURITY,
    EventTag.DATASET_UPLOAD: EventClass.ADMINISTRATION,
    EventTag.DATASET_BUILD: EventClass.ADMINISTRATION,
    EventTag.DATASET_READ: EventClass.ROUTINE,
    EventTag.DATASET_UPLOAD_PART: EventClass.ROUTINE,
    EventTag.DATASET_UPLOAD_COMPLETE: EventClass.ADMINISTRATION,
    EventTag.DATASET_UPLOAD_ABORT: EventClass.ADMINISTRATION,
    EventTag.DATASET_CREATE: EventClass.ADMINISTRATION,
    EventTag.DATASET_DELETE: EventClass.SECURITY,
    EventTag.DATASET_RESTORE: EventClass.SECURITY,
    EventTag.DATASET_PURGE: EventClass.SECURITY,
    EventTag.DATASET_LOCK: EventClass.ADMINISTRATION,
    EventTag.DATASET_UNLOCK: EventClass.ADMINISTRATION,
    EventTag.DATASET_BUILD_FINISH: EventClass.ADMINISTRATION,
    EventTag.DATASET_BUILD_CANCEL: EventClass.ADMINISTRATION,
    EventTag.DATASET_BUILD_INTERRUPTED: EventClass.ADMINISTRATION,
    EventTag.DATASET_UPLOAD_ABANDON: EventClass.ADMINISTRATION,
    EventTag.DATASET_MAINTENANCE: EventClass.ADMINISTRATION,
    EventTag.ANALYSIS_COUNT: EventClass.ROUTINE,
    EventTag.ANALYSIS_CUBE: EventClass.ROUTINE,
    EventTag.ANALYSIS_PREVIEW: EventClass.ROUTINE,
    # SQL can read up to the row cap of record-level data: kept like exports.
    EventTag.ANALYSIS_SQL: EventClass.SECURITY,
    EventTag.SELECTION_CREATE: EventClass.ADMINISTRATION,
    EventTag.SELECTION_UPDATE: EventClass.ADMINISTRATION,
    EventTag.SELECTION_DELETE: EventClass.ADMINISTRATION,
    EventTag.EXPORT_CREATE: EventClass.SECURITY,
    EventTag.EXPORT_DOWNLOAD: EventClass.SECURITY,
    EventTag.EXPORT_LIMITS_CHANGE: EventClass.SECURITY,
    EventTag.EXPORT_CAPS_CHANGE: EventClass.SECURITY,
    EventTag.EXPORT_PURGE: EventClass.SECURITY,
    EventTag.PRIVACY_KEY_CREATE: EventClass.SECURITY,
    EventTag.PRIVACY_KEY_ROTATE: EventClass.SECURITY,
    EventTag.PRIVACY_TOKEN_REVERSE: EventClass.SECURITY,
    EventTag.BACKUP_RUN: EventClass.ADMINISTRATION,
    EventTag.BACKUP_VERIFY: EventClass.ADMINISTRATION,
    EventTag.BACKUP_DRILL: EventClass.ADMINISTRATION,
    EventTag.BACKUP_PRUNE: EventClass.SECURITY,
    EventTag.BACKUP_HOLD: EventClass.SECURITY,
    EventTag.BACKUP_RELEASE: EventClass.SECURITY,
    EventTag.BACKUP_RESTORE: EventClass.SECURITY,
    EventTag.TENANT_DELETE: EventClass.SECURITY,
    EventTag.TENANT_UNDELETE: EventClass.SECURITY,
    EventTag.TENANT_PURGE: EventClass.SECURITY,
    EventTag.TENANT_LIMITS: EventClass.ADMINISTRATION,
    EventTag.ALERT_RAISE: EventClass.SECURITY,
    # Consent must be provable for as long as events made under it are kept.
    EventTag.TELEMETRY_INSIDER_JOIN: EventClass.SECURITY,
    EventTag.TELEMETRY_INSIDER_LEAVE: EventClass.SECURITY,
    EventTag.TELEMETRY_EXPORT: EventClass.SECURITY,
    EventTag.TELEMETRY_PURGE: EventClass.ADMINISTRATION,
    EventTag.TENANT_CLONE_OUT: EventClass.SECURITY,
    EventTag.TENANT_CLONE_IN: EventClass.SECURITY,
}


def event_class(tag: EventTag) -> EventClass:
    return TAG_CLASS[tag]
