"""ORM tables, one module per table. Importing this package registers them all on ``Base``."""

from switchboard.models.base import Base
from switchboard.models.credential import Credential
from switchboard.models.job import Job
from switchboard.models.rate_bucket import RateBucket
from switchboard.models.schedule import Schedule

__all__ = ["Base", "Credential", "Job", "RateBucket", "Schedule"]
