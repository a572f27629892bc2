"""ORM tables, one module per table. Importing this package registers them all on ``Base``."""

from switchboard.models.base import Base
from switchboard.models.credential import Credential
from switchboard.models.job import Job
from switchboard.models.rate_bucket import RateBucket
from switchboard.models.report_cursor import ReportCursor
from switchboard.models.schedule import Schedule
from switchboard.models.task import Task
from switchboard.models.webhook_delivery import WebhookDelivery

__all__ = [
    "Base",
    "Credential",
    "Job",
    "RateBucket",
    "ReportCursor",
    "Schedule",
    "Task",
    "WebhookDelivery",
]
