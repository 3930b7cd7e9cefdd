"""Rempart: a secure-by-design FHIR R4 platform for health establishments."""

__version__ = "0.1.0"
