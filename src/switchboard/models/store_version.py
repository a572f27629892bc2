from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from switchboard.db import UTCDateTime
from switchboard.models.base import Base


class StoreVersion(Base):
    """A named counter bumped in the transaction that changes a store (e.g. ``events``).

    Readers that cache a store in memory compare it with what they loaded. Because the bump
    locks the row until commit, versions become visible in increasing order.
    """

    __tablename__ = "store_versions"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
