from strongroom.errors import Conflict, InvalidInput, NotFound


class InvalidSlug(InvalidInput):
    pass


class TenantNotFound(NotFound):
    pass


class TenantExists(Conflict):
    pass


class TenantSuspended(Conflict):
    """The tenant is suspended: its data is kept intact, but nothing may be done with it."""

    status = 403
    slug = "tenant-suspended"
    title = "Tenant suspended"
