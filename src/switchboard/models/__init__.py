"""ORM tables, one module per table. Importing this package registers them all on ``Base``."""

from switchboard.models.base import Base
from switchboard.models.change_attempt import ChangeAttempt
from switchboard.models.change_cursor import ChangeCursor
from switchboard.models.change_event import ChangeEvent
from switchboard.models.connect_session import ConnectSession
from switchboard.models.connection import ConnectionRow
from switchboard.models.console_login import ConsoleLogin
from switchboard.models.credential import Credential
from switchboard.models.event_plan import EventPlan
from switchboard.models.event_plan_staging import EventPlanStaging
from switchboard.models.event_subscription import EventSubscription
from switchboard.models.feed_state import FeedState
from switchboard.models.integration import Integration
from switchboard.models.job import Job
from switchboard.models.oauth_attempt import OAuthAttempt
from switchboard.models.rate_bucket import RateBucket
from switchboard.models.report_cursor import ReportCursor
from switchboard.models.schedule import Schedule
from switchboard.models.store_version import StoreVersion
from switchboard.models.sync_run import SyncRun
from switchboard.models.task import Task
from switchboard.models.user import User
from switchboard.models.webhook_delivery import WebhookDelivery

__all__ = [
    "Base",
    "ChangeAttempt",
    "ChangeCursor",
    "ChangeEvent",
    "ConnectSession",
    "ConnectionRow",
    "ConsoleLogin",
    "Credential",
    "EventPlan",
    "EventPlanStaging",
    "EventSubscription",
    "FeedState",
    "Integration",
    "Job",
    "OAuthAttempt",
    "RateBucket",
    "ReportCursor",
    "Schedule",
    "StoreVersion",
    "SyncRun",
    "Task",
    "User",
    "WebhookDelivery",
]

from switchboard.models.contact import Contact
from switchboard.models.contact_cursor import ContactCursor

__all__ += ["Contact", "ContactCursor"]
