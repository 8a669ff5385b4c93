"""What can go wrong with backups. Messages name backups and files, never their content."""

from strongroom.errors import ConfigurationError, NotFound, StrongroomError


class RepositoryUnusable(ConfigurationError):
    """The backup repository is not set, missing, read-only, inside HOME or someone else's."""


class BackupNotFound(NotFound):
    pass


class BackupFailed(StrongroomError):
    """A backup run stopped (disk full, database dump failed); nothing was published."""

    status = 503
    slug = "backup-failed"
    title = "Backup failed"


class BackupCorrupted(StrongroomError):
    """A backup failed verification: a digest, an authentication tag or its signature."""

    status = 500
    slug = "backup-corrupted"
    title = "Backup failed verification"


class RestoreRefused(StrongroomError):
    status = 409
    slug = "restore-refused"
    title = "Restore refused"


class BackupHeld(StrongroomError):
    status = 409
    slug = "backup-held"
    title = "Backup is on hold"
