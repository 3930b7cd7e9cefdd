"""What every interaction needs, built once by the composition root."""

from __future__ import annotations

from dataclasses import dataclass

from rempart.config import LimitSettings
from rempart.fhir.validation import Validator
from rempart.rest.paging import CursorSigner
from rempart.storage.ports import ResourceStore


@dataclass(frozen=True)
class Context:
    store: ResourceStore
    validator: Validator
    limits: LimitSettings
    cursors: CursorSigner
