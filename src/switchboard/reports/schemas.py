from __future__ import annotations

from pydantic import BaseModel, Field


class ReportTask(BaseModel):
    id: str
    content: str
    createdOrCompletedAt: str = Field(description="ISO 8601, UTC.")


class Period(BaseModel):
    start: str
    end: str


class TaskReport(BaseModel):
    userId: str
    period: Period
    newIncompleteTasks: list[ReportTask]
    completedTasks: list[ReportTask]
    oldIncompleteTasks: list[ReportTask]
