"""Adapts Starlette requests to the framework-free interactions in ``rest/``.

Content negotiation and the body size limit are enforced here, before any
interaction runs: FHIR JSON only (XML gets a clear 406 or 415).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from rempart.errors import Category, RempartError
from rempart.rest.http import FhirRequest, FhirResponse
from rempart.web.errors import error_response, unexpected

Interaction = Callable[[FhirRequest], Awaitable[FhirResponse]]
Endpoint = Callable[[Request], Awaitable[Response]]

JSON_FORMATS = {"json", "application/json", "application/fhir+json", "application/json+fhir"}
XML_MARKERS = ("xml",)


def endpoint(interaction: Interaction, max_body: int, base_url: str | None) -> Endpoint:
    async def handle(request: Request) -> Response:
        try:
            _negotiate(request)
            fhir_request = await _fhir_request(request, max_body, base_url)
            answer = await interaction(fhir_request)
        except RempartError as error:
            return error_response(error)
        except Exception as exc:  # noqa: BLE001 - the last guard: never a stack trace out
            return unexpected(exc)
        return Response(answer.body, status_code=answer.status, headers=answer.headers)

    return handle


def _negotiate(request: Request) -> None:
    fmt = request.query_params.get("_format")
    if fmt is not None and fmt.split(";")[0].strip().lower() not in JSON_FORMATS:
        raise RempartError(Category.NOT_ACCEPTABLE, "Only FHIR JSON is supported (_format=json)")
    accept = request.headers.get("accept", "").lower()
    if accept and "xml" in accept and "json" not in accept and "*/*" not in accept:
        raise RempartError(Category.NOT_ACCEPTABLE, "Only application/fhir+json is supported")
    content_type = request.headers.get("content-type", "").lower()
    if "xml" in content_type:
        raise RempartError(Category.UNSUPPORTED_MEDIA, "Only application/fhir+json is supported")


async def _fhir_request(request: Request, max_body: int, base_url: str | None) -> FhirRequest:
    params = request.path_params
    return FhirRequest(
        method=request.method,
        base_url=base_url or f"{request.url.scheme}://{request.url.netloc}/fhir",
        type=params.get("type"),
        id=params.get("id"),
        version=params.get("vid"),
        query=tuple(request.query_params.multi_items()),
        headers=request.headers,
        body=await _body(request, max_body) if request.method in {"POST", "PUT", "PATCH"} else b"",
    )


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise _too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> RempartError:
    return RempartError(Category.TOO_LARGE, f"The request body is larger than {limit} bytes")
