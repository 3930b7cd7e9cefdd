"""The audit trail (design.md, Audit; docs/audit.md): capture (what a request becomes
as AuditEvents), the trail the gateway appends to and waits on, canonical records
chained by hash, signed checkpoints, and the verification of both.
"""
