"""ORM tables, one module per table. Importing this package registers them all on ``Base``."""

from switchboard.models.base import Base

__all__ = ["Base"]
