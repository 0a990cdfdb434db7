"""The one error body of every service: RFC 9457 problem details whose ``errors`` name each field at fault.

Every 4xx (and the rare 5xx) answer is ``application/problem+json``::

    {"type": "about:blank", "title": "Unprocessable Entity", "status": 422,
     "detail": "The request is invalid; see errors.",
     "errors": [{"field": "email", "code": "required", "message": "email is required"}]}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import HTTPException
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

PROBLEM_JSON = "application/problem+json"
INVALID_DETAIL = "The request is invalid; see errors."


class FieldError(BaseModel):
    field: str = Field(description="The field at fault, dotted for nested ones ('body' for the body as a whole)")
    code: str = Field(description="A machine-readable reason, e.g. 'required', 'body_too_large'")
    message: str = Field(description="The reason, for people")


class Problem(BaseModel):
    """RFC 9457 problem details, with the field-level errors as the extension member ``errors``."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "type": "about:blank", "title": "Unprocessable Entity", "status": 422,
        "detail": "The request is invalid; see errors.",
        "errors": [{"field": "email", "code": "required", "message": "email is required"}],
    }]})

    type: str = Field(default="about:blank", description="'about:blank': the status code says what happened")
    title: str = Field(description="The HTTP status phrase")
    status: int = Field(description="The HTTP status code")
    detail: str = Field(description="What went wrong with this request")
    errors: list[FieldError] = Field(default_factory=list, description="Each field at fault (may be empty)")
    correlation_id: str | None = Field(default=None, description="On 5xx answers: the id the logs carry")


def _field_path(location: Sequence[Any]) -> str:
    parts = [str(p) for p in location]
    # FastAPI prefixes the location ("body", "query", ...); keep it only when nothing else names the field.
    if len(parts) > 1 and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def field_errors(errors: Iterable[Any]) -> list[FieldError]:
    return [
        FieldError(field=_field_path(e.get("loc", ())), code=str(e.get("type", "invalid")), message=str(e.get("msg")))
        for e in errors
    ]


def problem(status: int, detail: str, errors: Iterable[FieldError | Mapping[str, Any]] = (),
            correlation_id: str | None = None) -> dict[str, Any]:
    """The problem body as a JSON-ready dict."""
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    body: dict[str, Any] = {
        "type": "about:blank", "title": title, "status": status, "detail": detail,
        "errors": [e.model_dump() if isinstance(e, FieldError) else jsonable_encoder(e) for e in errors],
    }
    if correlation_id is not None:
        body["correlation_id"] = correlation_id
    return body


def problem_response(status: int, detail: str, errors: Iterable[FieldError | Mapping[str, Any]] = (),
                     headers: Mapping[str, str] | None = None, correlation_id: str | None = None) -> JSONResponse:
    return JSONResponse(problem(status, detail, errors, correlation_id), status_code=status,
                        headers=dict(headers or {}), media_type=PROBLEM_JSON)


def problem_from_detail(status: int, detail: Any) -> tuple[str, list[Any]]:
    """An ``HTTPException``'s detail as (detail, errors): a string, or ``{"detail", "errors"}`` as routes raise."""
    if isinstance(detail, Mapping):
        return str(detail.get("detail") or HTTPStatus(status).phrase), list(detail.get("errors") or [])
    if isinstance(detail, str) and detail:
        return detail, []
    try:
        return HTTPStatus(status).phrase, []
    except ValueError:
        return "Error", []


def invalid_field(field: str, code: str, message: str) -> HTTPException:
    """A 422 naming one field, as a route raises it when a check the schema cannot express fails."""
    return HTTPException(422, detail={"detail": INVALID_DETAIL,
                                      "errors": [FieldError(field=field, code=code, message=message).model_dump()]})

