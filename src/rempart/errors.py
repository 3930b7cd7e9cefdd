"""The one error type of Rempart.

Every failure that can reach a caller is a :class:`RempartError` carrying a
:class:`Category`. The category alone decides the HTTP status; the web layer maps
it to a FHIR OperationOutcome in exactly one place (``web/errors.py``).
The message is written for the caller: it must never echo untrusted input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Category(Enum):
    """What went wrong, in the caller's terms. The value is the HTTP status."""

    INCORRECT = 400
    UNAUTHORIZED = 401
    FORBIDDEN = 403
    NOT_FOUND = 404
    NOT_ALLOWED = 405
    NOT_ACCEPTABLE = 406
    CONFLICT = 409
    GONE = 410
    PRECONDITION_FAILED = 412
    TOO_LARGE = 413
    UNSUPPORTED_MEDIA = 415
    UNPROCESSABLE = 422
    TOO_MANY = 429
    FAULT = 500
    UNAVAILABLE = 503

    @property
    def status(self) -> int:
        return self.value


# FHIR IssueType codes (http://hl7.org/fhir/issue-type) per category.
ISSUE_CODES: dict[Category, str] = {
    Category.INCORRECT: "invalid",
    Category.UNAUTHORIZED: "login",
    Category.FORBIDDEN: "forbidden",
    Category.NOT_FOUND: "not-found",
    Category.NOT_ALLOWED: "not-supported",
    Category.NOT_ACCEPTABLE: "not-supported",
    Category.CONFLICT: "conflict",
    Category.GONE: "deleted",
    Category.PRECONDITION_FAILED: "conflict",
    Category.TOO_LARGE: "too-long",
    Category.UNSUPPORTED_MEDIA: "not-supported",
    Category.UNPROCESSABLE: "processing",
    Category.TOO_MANY: "throttled",
    Category.FAULT: "exception",
    Category.UNAVAILABLE: "transient",
}


@dataclass(frozen=True)
class Issue:
    """One detail of a failure: a safe message and, where known, the FHIR path."""

    message: str
    path: str | None = None
    severity: str = "error"


@dataclass
class RempartError(Exception):
    """A failure the caller is told about, with a category and safe text."""

    category: Category
    message: str
    issues: list[Issue] = field(default_factory=list)
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    @property
    def issue_code(self) -> str:
        return self.code or ISSUE_CODES[self.category]
