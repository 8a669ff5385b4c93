from strongroom.errors import InvalidInput, ServiceUnavailable


class AuditUnavailable(ServiceUnavailable):
    """The audit event could not be written, so the action it describes did not happen."""

    slug = "audit-unavailable"
    title = "Audit trail unavailable"


class InvalidAuditFilter(InvalidInput):
    pass
