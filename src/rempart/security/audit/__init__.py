"""The audit trail's tamper evidence: canonical records chained by hash, signed
checkpoints, and the verification of both (design.md, Audit; docs/audit.md).

Capture (building AuditEvents from interactions) is not here yet; this package holds
what any capture appends to and what ``rempart audit verify`` checks.
"""
