"""Bulk loading of FHIR files into the store (``rempart import``).

NDJSON (one resource per line) and batch/transaction Bundles, validated like any
write, committed many resources per store transaction, and resumable: a journal
records what each committed batch covered (docs/synthetic-hospital.md#import).
"""
