from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from switchboard.batching import BatchWriter
from switchboard.config import Config
from switchboard.connectors.crm import UnknownField
from switchboard.connectors.fields import custom_fields_of
from switchboard.deps import Authenticated, DbSession, get_db
from switchboard.errors import NotFound, Unprocessable
from switchboard.models import User
from switchboard.openapi import ERRORS
from switchboard.users import service
from switchboard.users.schemas import (
    ItemError,
    SyncState,
    UserBatch,
    UserBatchOut,
    UserItem,
    UserOut,
    UserPage,
    UserPatch,
)

router = APIRouter(prefix="/users", tags=["users"], dependencies=Authenticated)
UserId = Annotated[str, Path(min_length=1, max_length=200)]


def _writer(request: Request) -> BatchWriter[service.Change, service.UserState]:
    """Concurrent PATCHes share one transaction (group commit, ``switchboard.batching``)."""
    writer: BatchWriter[service.Change, service.UserState] | None = getattr(
        request.app.state, "users_writer", None
    )
    if writer is None:
        users = request.app.state.config.hub.users

        async def apply(
            session: AsyncSession, changes: list[service.Change]
        ) -> list[service.UserState]:
            return await service.apply_changes(
                session,
                changes,
                crm_connection=users.crm_connection,
                retry_for=users.retry_for,
            )

        writer = BatchWriter(get_db(request), apply)
        request.app.state.users_writer = writer
    return writer


@router.patch("/{user_id}", response_model=UserOut, responses=ERRORS(401, 422))
async def patch_user(user_id: UserId, body: UserPatch, request: Request) -> UserOut:
    """Save the user now (200 at once); its CRM contact follows in the background, durably."""
    config: Config = request.app.state.config
    crm = _crm_connection(config, body)
    unknown = _unknown_fields(config, body, crm)
    if unknown is not None:
        raise unknown
    values = body.model_dump(include={"email"} | body.model_fields_set)
    if "crmConnection" in values:
        values["crmConnection"] = crm
    user = await _writer(request).submit(service.Change(user_id, values))
    return service.to_out(user)


@router.post("/batch", response_model=UserBatchOut, responses=ERRORS(401, 422))
async def patch_users(
    body: UserBatch,
    session: DbSession,
    request: Request,
    atomic: Annotated[
        bool, Query(description="Refuse the whole batch (422, nothing saved) if any item is bad.")
    ] = False,
) -> UserBatchOut:
    """Save up to 1,000 users in one transaction (each as `PATCH /users/{id}` would, its CRM
    contact following in the background). Each item is validated on its own: the bad ones are
    listed in `errors` with their index and the others are saved, unless `atomic=true`."""
    changes: list[service.Change] = []
    errors: list[ItemError] = []
    for index, raw in enumerate(body.items):
        try:
            item = UserItem.model_validate(raw)
        except ValidationError as exc:
            user_id = raw.get("id") if isinstance(raw, dict) else None
            errors.append(
                ItemError(
                    index=index,
                    id=user_id if isinstance(user_id, str) else None,
                    detail=[
                        {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
                        for e in exc.errors()
                    ],
                )
            )
            continue
        try:
            crm = _crm_connection(request.app.state.config, item)
        except Unprocessable as exc:
            unknown: Unprocessable | None = exc
        else:
            unknown = _unknown_fields(request.app.state.config, item, crm)
        if unknown is not None:
            errors.append(
                ItemError(
                    index=index,
                    id=item.id,
                    detail=[
                        {
                            "loc": list(unknown.loc[1:]),
                            "msg": unknown.message,
                            "type": unknown.error_type,
                        }
                    ],
                )
            )
            continue
        values = item.model_dump(include={"email"} | (item.model_fields_set - {"id"}))
        if "crmConnection" in values:
            values["crmConnection"] = crm
        changes.append(service.Change(item.id, values))
    if errors and atomic:
        raise Unprocessable(
            f"{len(errors)} of {len(body.items)} items are invalid; nothing was saved",
            extra={"errors": [e.model_dump() for e in errors]},
        )
    users = request.app.state.config.hub.users
    saved = await service.apply_changes(
        session, changes, crm_connection=users.crm_connection, retry_for=users.retry_for
    )
    return UserBatchOut(items=[service.to_out(u) for u in saved], errors=errors)


def _crm_connection(config: Config, body: UserPatch) -> str | None:
    """The id of the CRM connection a change names (``None``: it names none, or the
    configured one); a 422 when it is not a CRM connection."""
    if body.crmConnection is None:
        return None
    entry = config.entry(body.crmConnection)
    if entry is None or not entry.provider.is_crm:
        raise Unprocessable(
            f"No CRM connection named {body.crmConnection!r}", loc=("body", "crmConnection")
        )
    return entry.id


def _unknown_fields(config: Config, body: UserPatch, crm: str | None) -> Unprocessable | None:
    """The 422 for a custom field the CRM connection does not configure (``None``: all known).
    Refused at the API rather than by the propagation job, which could only fail later."""
    if not body.fields:
        return None
    name = crm or config.hub.users.crm_connection
    unknown = body.unknown_fields(custom_fields_of(config.connection(name)) if name else ())
    if not unknown:
        return None
    if name is None:
        return Unprocessable(
            f"Field {unknown[0]!r}: no [users] crm_connection is configured for custom fields",
            loc=("body", "fields", unknown[0]),
        )
    return UnknownField(unknown[0], name)


@router.get("/{user_id}", response_model=UserOut, responses=ERRORS(401, 404))
async def get_user(user_id: UserId, session: DbSession) -> UserOut:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound(f"No user {user_id!r}")
    return service.to_out(user)


@router.get("", response_model=UserPage, responses=ERRORS(401, 422))
async def list_users(
    session: DbSession,
    sync_state: SyncState | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: str | None = None,
) -> UserPage:
    """Users by id; `sync_state=failed` (or `dead`) lists the ones whose CRM update failed."""
    users = await service.list_users(session, sync_state=sync_state, limit=limit, after=cursor)
    return UserPage(
        items=[service.to_out(u) for u in users],
        next_cursor=users[-1].id if len(users) == limit else None,
    )
