"""Documented error responses and security, so /docs and /openapi.json show every status an
endpoint can answer and which operations need the API key.

Routes list their own statuses with :func:`ERRORS`; :func:`install` adds, from what each route
is made of, what every route of a kind answers: the API key's security and 401 on every route
that depends on ``require_api_key``, and 400 (an unparseable body), 413 (too large) and 422 on
every route with a request body. The schema is built once, at the first ``/openapi.json``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel

from switchboard.deps import require_api_key


class ErrorBody(BaseModel):
    detail: str


class ValidationErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorBody(BaseModel):
    detail: list[ValidationErrorItem]


_DESCRIPTIONS = {
    400: "Bad request",
    401: "Missing or invalid API key",
    404: "Not found",
    409: "Conflict",
    413: "Request body too large",
    422: "Invalid input; `detail` names each field",
    502: "The provider failed",
    503: "Unavailable; retry later",
}


def ERRORS(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {
        code: {
            "model": ValidationErrorBody if code == 422 else ErrorBody,
            "description": _DESCRIPTIONS.get(code, "Error"),
        }
        for code in codes
    }


SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "Bearer": {"type": "http", "scheme": "bearer", "description": "The same API key."},
}
SECURITY: list[dict[str, list[str]]] = [{"ApiKey": []}, {"Bearer": []}]
"""Either scheme (a list of requirements is an "or")."""

_BODY_ERRORS = {
    400: "The body could not be parsed (not UTF-8, nested too deep)",
    413: _DESCRIPTIONS[413],
    422: _DESCRIPTIONS[422],
}


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` document security and the statuses every route of a kind has."""
    build = app.openapi  # FastAPI's: cached until the routes change
    documented: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        schema = build()
        if not documented or documented[0] is not schema:
            documented[:] = [document(schema, app.routes)]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def document(schema: dict[str, Any], routes: list[Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {})
    components["securitySchemes"] = SECURITY_SCHEMES
    models = components.setdefault("schemas", {})
    for body_model in (ErrorBody, ValidationErrorItem, ValidationErrorBody):
        models.setdefault(
            body_model.__name__,
            body_model.model_json_schema(ref_template="#/components/schemas/{model}"),
        )
    # Route contexts: FastAPI's view of included routers' routes, their dependencies included.
    for route in iter_route_contexts(routes):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        needs_key = any(d.call is require_api_key for d in _dependants(route.dependant))
        for method in route.methods or ():
            operation = schema["paths"].get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            if needs_key:
                operation["security"] = SECURITY
                _add(responses, 401, _DESCRIPTIONS[401], "ErrorBody")
            if "requestBody" in operation:
                for status, description in _BODY_ERRORS.items():
                    model = "ValidationErrorBody" if status == 422 else "ErrorBody"
                    _add(responses, status, description, model)
    return schema


def _add(responses: dict[str, Any], status: int, description: str, model: str) -> None:
    responses.setdefault(
        str(status),
        {
            "description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model}"}}},
        },
    )


def _dependants(dependant: Dependant) -> Iterator[Dependant]:
    for sub in dependant.dependencies:
        yield sub
        yield from _dependants(sub)
