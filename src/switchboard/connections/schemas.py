from __future__ import annotations

from pydantic import BaseModel, Field

from switchboard.config import Connection


class ConnectionOut(BaseModel):
    name: str
    kind: str
    endpoint: str | None = Field(None, description="Base URL or feed URL (no credentials).")
    auth: str | None = Field(None, description="Credential type (token, oauth2, nango, …).")

    @classmethod
    def of(cls, name: str, conn: Connection) -> ConnectionOut:
        endpoint = getattr(conn, "base_url", None) or getattr(conn, "url", None)
        auth = getattr(conn, "auth", None)
        return cls(name=name, kind=conn.kind, endpoint=endpoint, auth=getattr(auth, "type", None))


class ConnectionList(BaseModel):
    items: list[ConnectionOut]
