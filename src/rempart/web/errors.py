"""The one place where errors become HTTP answers (an OperationOutcome each)."""

from __future__ import annotations

import logging

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from rempart.errors import Category, RempartError
from rempart.fhir.outcome import from_error
from rempart.rest.http import FHIR_JSON

log = logging.getLogger("rempart.web")

_HTTP_CATEGORIES = {404: Category.NOT_FOUND, 405: Category.NOT_ALLOWED}


def error_parts(error: RempartError) -> tuple[int, dict[str, str], bytes]:
    body = orjson.dumps(from_error(error))
    return error.category.status, {"content-type": FHIR_JSON, **error.headers}, body


def unexpected_parts(exc: Exception) -> tuple[int, dict[str, str], bytes]:
    """An error nobody planned for: logged in full here, a generic text to the caller."""
    log.error("unexpected error", exc_info=exc)
    return error_parts(RempartError(Category.FAULT, "Internal error"))


def _response(parts: tuple[int, dict[str, str], bytes]) -> Response:
    status, headers, body = parts
    return Response(body, status_code=status, headers=headers)


async def http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's routing errors (no route, wrong method) as OperationOutcomes."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    category = _HTTP_CATEGORIES.get(status, Category.INCORRECT)
    message = "Unknown path" if category is Category.NOT_FOUND else "Method not allowed here"
    return _response(error_parts(RempartError(category, message)))


async def server_error(request: Request, exc: Exception) -> Response:
    return _response(unexpected_parts(exc))
