"""Evidence of restore drills, and tenant deletions waiting for their delay to pass."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from strongroom.db import Base, UTCDateTime, utcnow


class BackupDrill(Base):
    """One restore drill: which backup, when, each check's outcome, pass or fail."""

    __tablename__ = "backup_drills"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    backup_id: Mapped[str | None] = mapped_column(sa.String(64))
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    passed: Mapped[bool] = mapped_column(sa.Boolean)
    checks: Mapped[str] = mapped_column(sa.Text)  # JSON list of {name, ok, detail}
    problem: Mapped[str | None] = mapped_column(sa.String(500))
