"""capabilities: ``GET [base]/metadata`` (FHIR R4 §3.1.0.14)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from rempart import __version__
from rempart.fhir.capability import capability_statement
from rempart.rest.http import FHIR_JSON, FhirRequest, FhirResponse


class Metadata:
    """Serves the CapabilityStatement, built once per process."""

    def __init__(self) -> None:
        started = datetime.now(UTC).isoformat(timespec="seconds")
        self._body = orjson.dumps(capability_statement(__version__, started))

    async def __call__(self, request: FhirRequest) -> FhirResponse:
        return FhirResponse(200, self._body, {"content-type": FHIR_JSON})
