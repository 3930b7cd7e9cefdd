"""OperationOutcome construction (FHIR R4 §OperationOutcome)."""

from __future__ import annotations

from typing import Any

from rempart.errors import Issue, RempartError


def outcome(issues: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": issues}


def information(message: str, code: str = "informational") -> dict[str, Any]:
    return outcome([{"severity": "information", "code": code, "diagnostics": message}])


def from_error(error: RempartError) -> dict[str, Any]:
    """The OperationOutcome a caller receives for ``error``: safe text only."""
    issues = [_issue(error.issue_code, Issue(error.message))]
    issues += [_issue(error.issue_code, detail) for detail in error.issues]
    return outcome(issues)


def _issue(code: str, detail: Issue) -> dict[str, Any]:
    issue: dict[str, Any] = {
        "severity": detail.severity,
        "code": code,
        "diagnostics": detail.message,
    }
    if detail.path:
        issue["expression"] = [detail.path]
    return issue
