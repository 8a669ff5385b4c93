from strongroom.errors import NotFound, StrongroomError


class ObjectCorrupted(StrongroomError):
    """An object's bytes do not match the digest recorded when it was written."""

    status = 500
    slug = "integrity"
    title = "Stored data failed its integrity check"


class ObjectMissing(NotFound):
    pass
