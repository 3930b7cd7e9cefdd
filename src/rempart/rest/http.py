"""Request and response values exchanged between ``web/`` and the interactions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from rempart.security.principal import Principal

FHIR_JSON = "application/fhir+json; charset=utf-8"


@dataclass(frozen=True)
class FhirRequest:
    method: str
    base_url: str
    """The FHIR base as the caller sees it, e.g. ``http://127.0.0.1:8080/fhir``."""
    type: str | None = None
    id: str | None = None
    version: str | None = None
    target: str | None = None
    """The third path segment: a compartment's member type or ``*``, or an operation."""
    query: tuple[tuple[str, str], ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    """Lower-case names."""
    body: bytes = b""
    principal: Principal | None = None
    """Who is calling (None only for the public discovery interactions)."""

    def param(self, name: str) -> str | None:
        for key, value in self.query:
            if key == name:
                return value
        return None

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


@dataclass
class FhirResponse:
    status: int
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> FhirResponse:
        return cls(status, orjson.dumps(payload), {"content-type": FHIR_JSON, **(headers or {})})
