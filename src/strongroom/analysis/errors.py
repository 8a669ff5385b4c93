"""Errors of the analysis domain: bad selections and bad cube specifications.

Messages name the place in the request (``selection.and[1]``), the field and the
operator, never a value the client sent: values may be personal data.
"""

from __future__ import annotations

from strongroom.errors import Conflict, Forbidden, InvalidInput, NotFound


class InvalidSelection(InvalidInput):
    """A selection that does not parse, does not type-check or is too large."""

    slug = "invalid-selection"
    title = "Invalid selection"


class InvalidCube(InvalidInput):
    """A cube specification that does not parse or does not type-check."""

    slug = "invalid-cube"
    title = "Invalid cube"


class TooManyCells(InvalidCube):
    """A cube whose estimated number of cells is above the allowed maximum."""

    slug = "too-many-cells"
    title = "Too many cells"


class PersonalDataRefused(Forbidden):
    """A selection, cube or query that would read personal columns the role may not see."""

    slug = "personal-data"
    title = "Personal data not available to your role"


class SelectionNotFound(NotFound):
    slug = "selection-not-found"
    title = "Saved selection not found"


class SelectionExists(Conflict):
    slug = "selection-exists"
    title = "Saved selection exists"
