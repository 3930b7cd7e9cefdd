"""What every interaction needs, built once by the composition root."""

from __future__ import annotations

from collections.abc import Callable
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
    authorize: Callable[[str, str, dict[str, str]], None] | None = None
    """Checks one interaction (method, path shape, path names) for the caller, as the
    gateway did for the request: batch and transaction entries go through it one by
    one. None: no caller to check (the CLI, the demo loader)."""

    def check(self, method: str, path: str) -> None:
        """Raises unless the caller may attempt ``method`` on ``path`` (a Bundle entry)."""
        if self.authorize is not None:
            from rempart.rest.routes import shape_of  # routes imports the interactions

            shape, names = shape_of(path.split("?")[0].split("/"))
            self.authorize(method, shape, names)
