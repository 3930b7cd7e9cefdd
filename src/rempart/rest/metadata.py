"""capabilities: ``GET [base]/metadata`` (FHIR R4 §3.1.0.14), with the SMART security
section (its URLs follow the base the caller used)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import orjson

from rempart import __version__
from rempart.fhir.capability import capability_statement, smart_security
from rempart.rest.http import FHIR_JSON, FhirRequest, FhirResponse

MAX_BASES = 16


class Metadata:
    """Serves the CapabilityStatement, built once per process and base URL."""

    def __init__(self) -> None:
        started = datetime.now(UTC).isoformat(timespec="seconds")
        self._statement = capability_statement(__version__, started)
        self._bodies: dict[str, bytes] = {}

    async def __call__(self, request: FhirRequest) -> FhirResponse:
        body = self._bodies.get(request.base_url)
        if body is None:
            body = self._render(request.base_url)
        return FhirResponse(200, body, {"content-type": FHIR_JSON})

    def _render(self, base: str) -> bytes:
        statement = copy.deepcopy(self._statement)
        statement["rest"][0]["security"] = smart_security(base.removesuffix("/fhir"))
        body = orjson.dumps(statement)
        if len(self._bodies) < MAX_BASES:
            self._bodies[base] = body
        return body
